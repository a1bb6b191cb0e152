"""Helpers shared by the dataset loaders: validated image/label reading, split files, collate.

Every dataset yields the same sample dict:
    {"image": np.uint8 [H,W,3] RGB, "target": np.int64 [H,W], "image_id": str}
where target holds class indices (0 = background) and ``ignore_index`` (255) for unlabeled pixels.

All problems caused by the data on disk raise ``CarError`` with one sentence naming the file.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from car.data.images import read_image_file
from car.errors import CarError

log = logging.getLogger(__name__)
ON_MISSING = ("fail", "skip")  # a loader's on_missing: the run's on_bad_sample (car/data/guard.py)

# Single-channel modes whose pixel values are class indices. Palette ('P') PNGs are read as
# indices directly; they must never be converted to RGB.
LABEL_MODES = ("P", "L", "I", "I;16")


def read_rgb(path: str | Path) -> np.ndarray:
    """Read a dataset image as np.uint8 [H,W,3] RGB through the one image reader (car/data/images.py:
    16-bit and float images scaled or refused, alpha composited on white, stored pixel order kept)."""
    return read_image_file(path, fix="check the dataset path, or re-download or re-extract the dataset")


def read_label_array(path: str | Path, modes: tuple[str, ...], fix_missing: str, fix_broken: str) -> np.ndarray:
    """The values of a single-channel label file as int64 [H, W]; one-sentence CarError when it is missing
    (`fix_missing` says what to do), unreadable (`fix_broken`) or not one of `modes` (a colour mask)."""
    path = Path(path)
    if not path.is_file():
        raise CarError(f"Label file {path} does not exist: {fix_missing}.")
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            label = np.array(image)  # 'P' gives palette indices, i.e. the class ids
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise CarError(f"Label file {path} is corrupt or truncated ({exc}): {fix_broken}.") from exc
    if mode not in modes or label.ndim != 2:
        raise CarError(f"Label file {path} has image mode {mode!r}, but labels must be single-channel "
                       f"({'/'.join(modes)}) images of class indices, not colour-rendered masks.")
    return label.astype(np.int64)


def read_label(path: str | Path, num_classes: int, ignore_index: int = 255) -> np.ndarray:
    """Read a class-index label map as np.int64 [H,W], checking every value is a class or ignore_index."""
    label = read_label_array(path, LABEL_MODES, "check the dataset path or re-extract the dataset",
                             "re-download or re-extract the dataset")  # [H,W]
    values = np.unique(label)
    bad = values[((values < 0) | (values >= num_classes)) & (values != ignore_index)]
    if bad.size:
        shown = ", ".join(str(v) for v in bad[:10]) + (", ..." if bad.size > 10 else "")
        raise CarError(
            f"Label file {path} contains values {shown} outside the {num_classes} classes "
            f"[0, {num_classes}) and the ignore index {ignore_index}: check num_classes or the label files."
        )
    return label


def check_same_size(image: np.ndarray, target: np.ndarray, image_id: str) -> None:
    """Raise CarError unless image [H,W,3] and target [H,W] have the same height and width."""
    if image.shape[:2] != target.shape[:2]:
        raise CarError(
            f"Image and label of sample {image_id} differ in size (image {image.shape[0]}x{image.shape[1]}, "
            f"label {target.shape[0]}x{target.shape[1]}): the label file does not belong to this image, "
            f"re-extract the dataset."
        )


def check_listed_files(missing: list[Path], samples_missing: int, total: int, on_missing: str, sentence: str) -> None:
    """A loader's up-front check of the files its split lists (cheap stat calls, before any model loads).

    missing: the listed files not on disk; samples_missing: how many of the `total` samples they
    belong to; sentence: the one-sentence error naming the count, the first file and the fix.
    fail: raise it. skip: keep the samples; each raises its own "does not exist" CarError when
    read, which the data guard counts and lists. A split with no sample left stops either way.
    """
    if on_missing not in ON_MISSING:
        raise CarError(f"on_missing must be one of {', '.join(ON_MISSING)}, got {on_missing!r}.")
    if not missing:
        return
    if on_missing == "fail" or samples_missing >= total:
        raise CarError(sentence)
    log.warning("%d of %d samples have missing files (e.g. %s); on_bad_sample=skip: they will be skipped and listed",
                samples_missing, total, missing[0])


def list_collate(batch: list[dict]) -> list[dict]:
    """Identity collate for DataLoader: keep variable-size samples as a plain list."""
    return list(batch)


def choose_expression_sets(dataset: str, requested: list[str] | None, known) -> list[str]:
    """The expression sets a video dataset serves: `requested` (all of `known` when None or empty), each one
    checked against `known` (names in order)."""
    sets = list(requested) if requested else list(known)
    unknown = [s for s in sets if s not in known]
    if unknown:
        raise CarError(f"{dataset} has no expression set '{unknown[0]}'; its sets are {', '.join(known)}.")
    return sets


def read_split_file(path: str | Path, readme: str = "datasets/voc/README.md") -> list[str]:
    """Read image ids from a split file (one per line; blank lines skipped, whitespace stripped)."""
    path = Path(path)
    if not path.is_file():
        raise CarError(f"Split file {path} does not exist: prepare the dataset as described in {readme}.")
    ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise CarError(f"Split file {path} lists no image ids: prepare the dataset as described in {readme}.")
    return ids


class ListedImages(Dataset):
    """A loader of listed ids, each an image and a class-index label: the sample, its length, its repr.

    Subclasses set `root`, `split`, `ids`, `num_classes`, `ignore_index` and the paths
    `_image_path(id)`, `_label_path(id)`."""

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict:
        image_id = self.ids[index]
        image = read_rgb(self._image_path(image_id))  # uint8 [H,W,3]
        target = read_label(self._label_path(image_id), self.num_classes, self.ignore_index)  # int64 [H,W]
        check_same_size(image, target, image_id)
        return {"image": image, "target": target, "image_id": image_id}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, num_samples={len(self)})"
