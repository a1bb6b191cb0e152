"""Checks shared by the preparation scripts of the image-folder benchmarks (datasets/<name>/prepare.py).

ADE20K-150, ADE-847, Context-459, COCO-Stuff-171 and Cityscapes are each an image folder and a label
folder; their scripts verify the same things: the expected number of images (a partial tree is
refused unless --allow-subset), a label for every image, and for the decoded labels the file mode,
the allowed values and the image's size. Every problem is one `PrepareError` line. Pillow + numpy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from car.data.archives import PrepareError, evenly_spaced

TIF_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def require_dir(folder: Path, what: str, fix: str) -> None:
    if not folder.is_dir():
        raise PrepareError(f"{what} tree is incomplete: {folder} does not exist; {fix}.")


def check_count(ids: Sequence[str], expected: int, what: str, where: Path, fix: str, allow_subset: bool) -> None:
    """Refuse an empty folder always, and a count other than `expected` unless allow_subset."""
    if not ids:
        raise PrepareError(f"{where} holds no {what} images; {fix}.")
    if len(ids) != expected and not allow_subset:
        raise PrepareError(f"{what} is incomplete: {where} holds {len(ids)} of {expected} images; {fix}, or pass "
                           f"--allow-subset to accept a deliberate subset.")


def check_present(ids: Sequence[str], path_of: Callable[[str], Path], what: str, fix: str) -> None:
    absent = [path_of(i) for i in ids if not path_of(i).is_file()]
    if absent:
        raise PrepareError(f"{what} are incomplete: {len(absent)} of {len(ids)} missing (first: {absent[0]}); {fix}.")


def label_values(path: Path, modes: Sequence[str], what: str, fix: str) -> tuple[np.ndarray, tuple[int, int]]:
    """The unique values and (width, height) of a label file of one of `modes`."""
    try:
        with Image.open(path) as label:
            mode, size = label.mode, label.size
            values = np.unique(np.asarray(label)) if mode in modes else None
    except Exception as exc:  # noqa: BLE001 - any decoder error means a broken file
        raise PrepareError(f"{what} label {path} cannot be read ({exc}); {fix}.") from exc
    if values is None:
        raise PrepareError(f"{what} label {path} has mode {mode!r}, expected {'/'.join(modes)}; {fix}.")
    return values, size


def image_size(path: Path, what: str, fix: str) -> tuple[int, int]:
    try:
        with Image.open(path) as image:
            return image.size
    except Exception as exc:  # noqa: BLE001
        raise PrepareError(f"{what} image {path} cannot be read ({exc}); {fix}.") from exc


def check_labels(ids: Sequence[str], image_of: Callable[[str], Path], label_of: Callable[[str], Path], *,
                 what: str, fix: str, modes: Sequence[str], allowed: Callable[[np.ndarray], np.ndarray],
                 allowed_text: str, sample: int | None) -> int:
    """Decode `sample` evenly spaced labels (all when None): mode, values (`allowed(values)` -> bool mask),
    size equal to the image's. Returns how many were checked."""
    checked = evenly_spaced(list(ids), sample)
    for image_id in checked:
        values, size = label_values(label_of(image_id), modes, what, fix)
        bad = values[~allowed(values.astype(np.int64))]
        if bad.size:
            raise PrepareError(f"{what} label {label_of(image_id)} has values {bad[:10].tolist()} outside "
                               f"{allowed_text}; {fix}.")
        want = image_size(image_of(image_id), what, fix)
        if size != want:
            raise PrepareError(f"{what} label {label_of(image_id)} is {size[0]}x{size[1]} but its image "
                               f"{image_of(image_id)} is {want[0]}x{want[1]}; {fix}.")
    return len(checked)


def sorted_stems(folder: Path, suffix: str) -> list[str]:
    return sorted(p.name[: -len(suffix)] for p in folder.iterdir() if p.name.endswith(suffix) and p.is_file())


@dataclass(frozen=True)
class LabelFolders:
    """An image folder and its label folder (``<id><image_suffix>`` beside ``<id><label_suffix>``)."""

    name: str  # the benchmark, for messages: "ADE20K-150"
    split: str  # "validation"
    image_dir: Path
    label_dir: Path
    expected: int  # images of the official split
    modes: Sequence[str]  # label file modes
    allowed: Callable[[np.ndarray], np.ndarray]  # label values -> bool mask of the allowed ones
    allowed_text: str  # the allowed values in words
    image_suffix: str = ".jpg"
    label_suffix: str = ".png"
    labels: str = "labels"  # what the label files are called ("annotations", "gtFine labels")

    def image(self, image_id: str) -> Path:
        return self.image_dir / f"{image_id}{self.image_suffix}"

    def label(self, image_id: str) -> Path:
        return self.label_dir / f"{image_id}{self.label_suffix}"


def tif_folders(name: str, split: str, image_dir: Path, label_dir: Path, expected: int, num_classes: int,
                ignore: int) -> LabelFolders:
    """The detectron2 layout of the large label spaces: JPEG images, uint16 TIFF labels 0..K-1 and `ignore`."""
    return LabelFolders(name, split, image_dir, label_dir, expected, TIF_MODES,
                        lambda v: ((v >= 0) & (v < num_classes)) | (v == ignore), f"0..{num_classes - 1} and {ignore}",
                        label_suffix=".tif")


def verify_folders(tree: LabelFolders, where: Path, fix: str, allow_subset: bool, sample: int | None,
                   ids: Callable[[Path], list[str]] | None = None,
                   check_ids: Callable[[list[str]], None] | None = None) -> tuple[list[str], str]:
    """Both folders, the image count (`check_ids`: more checks of the ids), a label per image and the
    decoded labels; returns the ids and the summary line (without "OK: ")."""
    require_dir(tree.image_dir, tree.name, fix)
    require_dir(tree.label_dir, tree.name, fix)
    found = ids(tree.image_dir) if ids is not None else sorted_stems(tree.image_dir, tree.image_suffix)
    check_count(found, tree.expected, f"{tree.name} {tree.split}", tree.image_dir, fix, allow_subset)
    if check_ids is not None:
        check_ids(found)
    check_present(found, tree.label, f"{tree.name} {tree.labels}", fix)
    checked = check_labels(found, tree.image, tree.label, what=tree.name, fix=fix, modes=tree.modes,
                           allowed=tree.allowed, allowed_text=tree.allowed_text, sample=sample)
    subset = " (subset allowed)" if allow_subset else ""
    return found, (f"{tree.name} {tree.split} at {where}: {len(found)} images with {tree.labels} "
                   f"({checked} labels checked){subset}")


def output_pairs(image_dir: Path, label_dir: Path, stems: Iterable[str], overwrite: bool = False,
                 image_suffix: str = ".jpg", label_suffix: str = ".tif") -> list[tuple[str, Path, Path]]:
    """(stem, image, label) of the conversions still to do (both folders are made): a stem whose image
    and label are both written already is left out unless `overwrite`."""
    image_dir.mkdir(parents=True, exist_ok=True)
    label_dir.mkdir(parents=True, exist_ok=True)
    pairs = [(stem, image_dir / f"{stem}{image_suffix}", label_dir / f"{stem}{label_suffix}") for stem in stems]
    return [(stem, image, label) for stem, image, label in pairs
            if overwrite or not (image.is_file() and label.is_file())]
