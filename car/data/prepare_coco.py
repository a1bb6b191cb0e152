"""What COCO-Object's and COCO-Stuff-171's preparation scripts share: the downloads, the tree, the map conversion.

Both read COCO val2017 (``<root>/images/val2017/*.jpg``) and the COCO-Stuff-164k maps
(``<root>/annotations/val2017/<id>.png``, ``COCO-Stuff id - 1``: 0..181, 255 unlabelled) and write one
derived label per image next to the map; they differ in the lookup from map values to their labels
and in the suffix of their output (datasets/coco_object/prepare.py, datasets/coco_stuff/prepare.py),
which each describe themselves in a `CocoLabels` and get their command line from `preparation`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from car.data.archives import PrepareError
from car.data.prepare_checks import LabelFolders, check_count, require_dir, sorted_stems, verify_folders
from car.data.prepare_driver import Archive, Preparation

SPLIT = "val2017"
EXPECTED_IMAGES = 5000
IMAGES_ZIP = "val2017.zip"
STUFF_ZIP = "stuffthingmaps_trainval2017.zip"

# COCO category ids of the 80 thing classes, in COCO order.
COCO_THING_IDS = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28,
    31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55,
    56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84,
    85, 86, 87, 88, 89, 90,
)
if len(COCO_THING_IDS) != 80 or list(COCO_THING_IDS) != sorted(set(COCO_THING_IDS)):  # guards the table above
    raise RuntimeError("COCO_THING_IDS must list 80 distinct ascending COCO category ids")


def map_stuff(stuff: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """A COCO-Stuff label map [H, W] (COCO-Stuff id - 1: 0..181, 255 unlabelled) through `lut` [256]
    -> uint8 [H, W]; ValueError for any other value or shape."""
    stuff = np.asarray(stuff)
    if stuff.ndim != 2:
        raise ValueError(f"expected a 2-D label map, got shape {stuff.shape}")
    values = np.unique(stuff)
    bad = values[((values < 0) | (values > 181)) & (values != 255)]
    if bad.size:
        raise ValueError(f"values {bad[:10].tolist()} are not COCO-Stuff labels (0..181 or 255)")
    return lut[stuff.astype(np.int64)].astype(np.uint8)


def into(folder: str) -> Callable:
    return lambda root, args: root / folder


ARCHIVES = (
    Archive("--images-zip", IMAGES_ZIP, f"path to {IMAGES_ZIP}, extracted into ROOT/images",
            keep_prefix=f"{SPLIT}/", destination=into("images")),
    Archive("--stuff-zip", STUFF_ZIP, f"path to {STUFF_ZIP}; its val2017/ part goes to ROOT/annotations",
            keep_prefix=f"{SPLIT}/", destination=into("annotations")),
)
ROOT_HELP = "the coco_stuff164k folder: holds (or will hold) images/val2017 and annotations/val2017"


def coco_tree(root: Path, what: str, readme: str, allow_subset: bool) -> tuple[Path, Path, list[str]]:
    """(image folder, label folder, image ids) of an extracted tree, with the official image count."""
    image_dir, label_dir = root / "images" / SPLIT, root / "annotations" / SPLIT
    fix = f"extract {IMAGES_ZIP} and {STUFF_ZIP} (--images-zip/--stuff-zip, see {readme})"
    require_dir(image_dir, what, fix)
    require_dir(label_dir, what, fix)
    ids = sorted_stems(image_dir, ".jpg")
    check_count(ids, EXPECTED_IMAGES, "COCO val2017", image_dir, f"re-extract {IMAGES_ZIP} (see {readme})",
                allow_subset)
    return image_dir, label_dir, ids


def convert_file(src: Path, dst: Path, convert_map: Callable[[np.ndarray], np.ndarray], readme: str) -> None:
    """One COCO-Stuff PNG -> `convert_map`'s uint8 labels as an 'L' PNG at `dst` (written whole or not at all)."""
    try:
        with Image.open(src) as im:
            im.load()
            mode, stuff = im.mode, np.array(im)
    except Exception as exc:  # noqa: BLE001 - any decoder error means a broken file
        raise PrepareError(f"COCO-Stuff label {src} cannot be read ({exc}); re-extract {STUFF_ZIP} "
                           f"(see {readme}).") from exc
    if mode not in ("L", "P"):
        raise PrepareError(f"COCO-Stuff label {src} has mode {mode!r}, expected an 'L' PNG of COCO-Stuff ids - 1; it "
                           f"is not from {STUFF_ZIP} (see {readme}).")
    try:
        out = convert_map(stuff)
    except ValueError as exc:
        raise PrepareError(f"COCO-Stuff label {src}: {exc}; it is not from {STUFF_ZIP} (see {readme}).") from exc
    tmp = dst.with_name(dst.name + ".tmp")
    Image.fromarray(out, mode="L").save(tmp, format="PNG")
    os.replace(tmp, dst)  # never leave a half-written label behind


def convert_maps(root: Path, convert_map: Callable[[np.ndarray], np.ndarray], out_suffix: str, *, what: str,
                 readme: str, allow_subset: bool = False, overwrite: bool = False) -> int:
    """Write ``<id><out_suffix>`` for every image that lacks one; returns how many were written."""
    _, label_dir, ids = coco_tree(root, what, readme, allow_subset)
    todo = []
    for image_id in ids:
        dst = label_dir / f"{image_id}{out_suffix}"
        if dst.is_file() and not overwrite:
            continue
        src = label_dir / f"{image_id}.png"
        if not src.is_file():
            raise PrepareError(f"COCO-Stuff label {src} is missing for image {image_id}.jpg; extract the val2017/ part "
                               f"of {STUFF_ZIP} into {label_dir.parent} (see {readme}).")
        todo.append((src, dst))
    for src, dst in todo:
        convert_file(src, dst, convert_map, readme)
    return len(todo)


@dataclass(frozen=True)
class CocoLabels:
    """The labels a script derives from the COCO-Stuff maps."""

    name: str  # "COCO-Object"
    script: str  # "datasets/coco_object/prepare.py"
    readme: str
    out_suffix: str  # "_instanceTrainIds.png"
    convert_map: Callable[[np.ndarray], np.ndarray]  # COCO-Stuff map [H, W] -> uint8 labels [H, W]
    allowed: Callable[[np.ndarray], np.ndarray]  # label values -> bool mask of the ones it writes
    allowed_text: str

    def convert(self, root: Path, args) -> str:
        n = convert_maps(root, self.convert_map, self.out_suffix, what=self.name, readme=self.readme,
                         allow_subset=args.allow_subset, overwrite=args.overwrite)
        return f"wrote {n} {self.out_suffix} label(s)"

    def verify(self, root: Path, allow_subset: bool = False, sample: int | None = None) -> str:
        coco_tree(root, self.name, self.readme, allow_subset)  # the downloads' own messages first
        tree = LabelFolders(self.name, SPLIT, root / "images" / SPLIT, root / "annotations" / SPLIT, EXPECTED_IMAGES,
                            ("L", "P"), self.allowed, self.allowed_text, label_suffix=self.out_suffix)
        fix = f"run 'python {self.script} --root {root}' (see {self.readme}) with --overwrite"
        return "OK: " + verify_folders(tree, root, fix, allow_subset, sample)[1]


def preparation(labels: CocoLabels, description: str, subset_help: str) -> Preparation:
    return Preparation(description=description, readme=labels.readme, verify=labels.verify, root_help=ROOT_HELP,
                       archives=ARCHIVES, convert=labels.convert, overwrite_help="re-convert labels that already exist",
                       subset_help=subset_help)
