"""Scoring a results folder in DAVIS layout against a DAVIS-2017 tree, as the toolkit reads them.

    <davis_root>/ImageSets/2017/<set>.txt                  one sequence a line (scored in this order)
    <davis_root>/Annotations_unsupervised/480p/<seq>/*.png  ground truth, unsupervised task
    <davis_root>/Annotations/480p/<seq>/*.png               ground truth, semi-supervised task
    <results>/<seq>/<frame>.png                             predictions, one per ground-truth frame

PNGs are single-channel (palette or grayscale) and their pixel values are object ids. The JPEG
frames are not needed (the toolkit's ``codalab`` mode). Anything missing, unreadable or of the
wrong size raises ``DavisInputError``: one sentence naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from car.errors import CarError
from car.metrics.davis.protocol import DavisMeasures

ANNOTATIONS = {"unsupervised": "Annotations_unsupervised", "semi-supervised": "Annotations"}
RESOLUTION = "480p"


class DavisInputError(CarError, ValueError):
    """A DAVIS tree or results folder that cannot be scored (one sentence naming the file)."""


def read_ids(path: Path) -> np.ndarray:
    """[H, W] uint8 ids of a single-channel PNG."""
    try:
        with Image.open(path) as image:
            ids = np.array(image)
    except FileNotFoundError:
        raise DavisInputError(f"{path} is missing") from None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        raise DavisInputError(f"{path} cannot be read as an image ({err})") from None
    if ids.ndim != 2:
        raise DavisInputError(f"{path} has {ids.shape[-1]} channels; DAVIS masks are single-channel "
                              f"(palette or grayscale) PNGs whose values are object ids")
    if ids.size and (ids.min() < 0 or ids.max() > 255):
        raise DavisInputError(f"{path} has object ids outside 0..255")
    return ids.astype(np.uint8)


def sequence_names(davis_root: Path, split: str) -> list[str]:
    listing = davis_root / "ImageSets" / "2017" / f"{split}.txt"
    if not listing.is_file():
        raise DavisInputError(f"{listing} is missing: is {davis_root} a DAVIS-2017 root (with ImageSets/2017)?")
    names = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    if not names:
        raise DavisInputError(f"{listing} lists no sequence")
    return names


def ground_truth_frames(davis_root: Path, task: str, sequence: str) -> list[Path]:
    folder = davis_root / ANNOTATIONS[task] / RESOLUTION / sequence
    frames = sorted(folder.glob("*.png"))
    if not frames:
        raise DavisInputError(f"{folder} has no ground-truth PNG for sequence {sequence}")
    return frames


def read_sequence(davis_root: Path, results: Path, task: str, sequence: str) -> tuple[np.ndarray, np.ndarray]:
    """gt, pred: [T, H, W] uint8 of one sequence. In the semi-supervised task the first and last
    predicted frames are not read (never scored), so they may be absent; they are zeros here."""
    gt_paths = ground_truth_frames(davis_root, task, sequence)
    gt = [read_ids(p) for p in gt_paths]
    size = gt[0].shape
    for path, mask in zip(gt_paths, gt):
        if mask.shape != size:
            raise DavisInputError(f"{path} is {mask.shape[1]}x{mask.shape[0]} but the sequence's first "
                                  f"ground-truth frame is {size[1]}x{size[0]}")
    if not (results / sequence).is_dir():
        raise DavisInputError(f"{results / sequence} is missing: the results folder has no sequence {sequence}")
    scored = range(1, len(gt) - 1) if task == "semi-supervised" else range(len(gt))
    pred = np.zeros((len(gt), *size), dtype=np.uint8)  # [T, H, W]
    for t in scored:
        path = results / sequence / gt_paths[t].name
        mask = read_ids(path)
        if mask.shape != size:
            raise DavisInputError(f"{path} is {mask.shape[1]}x{mask.shape[0]} but its ground truth "
                                  f"{gt_paths[t]} is {size[1]}x{size[0]}")
        pred[t] = mask
    return np.stack(gt), pred


def score_folder(davis_root: str | Path, results: str | Path, task: str = "unsupervised",
                 split: str = "val", max_objects: int = 20) -> DavisMeasures:
    """Every sequence of the set scored into a ``DavisMeasures`` (its ``per_frame`` values kept)."""
    davis_root, results = Path(davis_root), Path(results)
    if not results.is_dir():
        raise DavisInputError(f"{results} is not a folder (expected <results>/<sequence>/<frame>.png)")
    measures = DavisMeasures(task=task, max_objects=max_objects)
    for sequence in sequence_names(davis_root, split):
        gt, pred = read_sequence(davis_root, results, task, sequence)
        try:
            measures.process(sequence, gt, pred)
        except ValueError as err:
            raise DavisInputError(f"{results / sequence}: {err}") from None
    return measures


def evaluate_folder(davis_root: str | Path, results: str | Path, task: str = "unsupervised",
                    split: str = "val", max_objects: int = 20) -> dict:
    """The scores of ``DavisMeasures.compute()`` for every sequence of the set."""
    return score_folder(davis_root, results, task, split, max_objects).compute()
