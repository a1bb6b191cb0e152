#!/usr/bin/env python
"""Extract, convert and verify COCO-Object (COCO val2017, 80 thing classes) for car-bench.

Usage::

    # extract both zips, convert the COCO-Stuff maps, verify
    python datasets/coco_object/prepare.py --root <dir>/coco \
        --images-zip /path/val2017.zip --stuff-zip /path/stuffthingmaps_trainval2017.zip
    # convert (where outputs are missing) and verify an extracted tree
    python datasets/coco_object/prepare.py --root <dir>/coco
    # verify only
    python datasets/coco_object/prepare.py --root <dir>/coco --verify-only

``--root`` is the folder the loader (car.data.coco_object.COCOObject) reads: it holds
``images/val2017/`` and ``annotations/val2017/``.

Conversion (GroupViT's COCO-Object rule): a COCO-Stuff-164k label map stores ``COCO-Stuff id - 1``
(0..181, 255 unlabeled). The 80 thing classes (COCO category ids 1..90 with gaps) become 1..80 in
COCO category order; stuff (values 91..181), the 11 unused thing ids and 255 become 0.

Standard library + numpy + Pillow (+ ``car.data.archives`` for safe zip extraction). ``main()``
returns 0 on success (one ``OK:`` line on stdout) and 1 on any problem (one ``error:`` line on
stderr). See datasets/coco_object/README.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from car.data.archives import PrepareError, evenly_spaced, safe_extract_zip  # noqa: E402

README = "datasets/coco_object/README.md"
SPLIT = "val2017"
EXPECTED_IMAGES = 5000
IMAGES_ZIP = "val2017.zip"
STUFF_ZIP = "stuffthingmaps_trainval2017.zip"
OUT_SUFFIX = "_instanceTrainIds.png"
DERIVED_SUFFIXES = (OUT_SUFFIX, "_labelTrainIds.png")  # outputs of this script / of mmseg's 171-class script
NUM_CLASSES = 81  # 0 = background, 1..80 = things
IGNORE_INDEX = 255

# COCO category ids of the 80 thing classes, in COCO order (index + 1 = COCO-Object label).
COCO_THING_IDS = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28,
    31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55,
    56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84,
    85, 86, 87, 88, 89, 90,
)
if len(COCO_THING_IDS) != 80 or list(COCO_THING_IDS) != sorted(set(COCO_THING_IDS)):  # guards the table above
    raise RuntimeError("COCO_THING_IDS must list 80 distinct ascending COCO category ids")


def stuff_to_object_lut() -> np.ndarray:
    """uint8[256] lookup table: COCO-Stuff PNG value (COCO-Stuff id - 1) -> COCO-Object label."""
    lut = np.zeros(256, dtype=np.uint8)
    for index, coco_id in enumerate(COCO_THING_IDS):
        lut[coco_id - 1] = index + 1
    return lut


_LUT = stuff_to_object_lut()


def convert_stuff_map(stuff: np.ndarray) -> np.ndarray:
    """Map a COCO-Stuff label map [H,W] (values 0..181, 255) to COCO-Object labels uint8 [H,W] (0..80)."""
    stuff = np.asarray(stuff)
    if stuff.ndim != 2:
        raise ValueError(f"expected a 2-D label map, got shape {stuff.shape}")
    values = np.unique(stuff)
    bad = values[((values < 0) | (values > 181)) & (values != IGNORE_INDEX)]
    if bad.size:
        raise ValueError(f"values {bad[:10].tolist()} are not COCO-Stuff labels (0..181 or 255)")
    return _LUT[stuff.astype(np.uint8)]


def convert_file(src: Path, dst: Path) -> None:
    """Convert one COCO-Stuff PNG into a COCO-Object ``*_instanceTrainIds.png`` ('L' mode)."""
    try:
        with Image.open(src) as im:
            im.load()
            mode, stuff = im.mode, np.array(im)
    except Exception as exc:  # noqa: BLE001 - any decoder error means a broken file
        raise PrepareError(f"COCO-Stuff label {src} cannot be read ({exc}); re-extract {STUFF_ZIP} (see {README}).") from exc
    if mode not in ("L", "P"):
        raise PrepareError(
            f"COCO-Stuff label {src} has mode {mode!r}, expected an 'L' PNG of COCO-Stuff ids - 1; it is not from "
            f"{STUFF_ZIP} (see {README})."
        )
    try:
        out = convert_stuff_map(stuff)
    except ValueError as exc:
        raise PrepareError(f"COCO-Stuff label {src}: {exc}; it is not from {STUFF_ZIP} (see {README}).") from exc
    tmp = dst.with_name(dst.name + ".tmp")
    Image.fromarray(out, mode="L").save(tmp, format="PNG")
    os.replace(tmp, dst)  # never leave a half-written label behind


# --------------------------------------------------------------------------------- convert/verify


def _image_ids(image_dir: Path) -> list[str]:
    return sorted(p.stem for p in image_dir.iterdir() if p.suffix == ".jpg")


def _stuff_maps(label_dir: Path) -> list[Path]:
    return sorted(
        p for p in label_dir.iterdir()
        if p.suffix == ".png" and not p.name.endswith(DERIVED_SUFFIXES) and not p.name.endswith(".tmp")
    )


def _check_tree(root: Path, allow_subset: bool) -> tuple[Path, Path, list[str]]:
    image_dir, label_dir = root / "images" / SPLIT, root / "annotations" / SPLIT
    for folder, zip_name in ((image_dir, IMAGES_ZIP), (label_dir, STUFF_ZIP)):
        if not folder.is_dir():
            raise PrepareError(
                f"COCO-Object tree is incomplete: {folder} does not exist; extract {zip_name} there "
                f"(e.g. with --images-zip/--stuff-zip, see {README})."
            )
    ids = _image_ids(image_dir)
    if not ids:
        raise PrepareError(f"{image_dir} holds no .jpg images; extract {IMAGES_ZIP} there (see {README}).")
    if len(ids) != EXPECTED_IMAGES and not allow_subset:
        raise PrepareError(
            f"COCO val2017 is incomplete: {image_dir} holds {len(ids)} of {EXPECTED_IMAGES} images; re-extract "
            f"{IMAGES_ZIP} (see {README}), or pass --allow-subset to accept a deliberate subset."
        )
    return image_dir, label_dir, ids


def convert(root: Path, allow_subset: bool = False, overwrite: bool = False) -> int:
    """Write ``<id>_instanceTrainIds.png`` for every image that lacks one; returns how many were written."""
    image_dir, label_dir, ids = _check_tree(root, allow_subset)
    todo = []
    for image_id in ids:
        dst = label_dir / f"{image_id}{OUT_SUFFIX}"
        if dst.is_file() and not overwrite:
            continue
        src = label_dir / f"{image_id}.png"
        if not src.is_file():
            raise PrepareError(
                f"COCO-Stuff label {src} is missing for image {image_id}.jpg; extract the val2017/ part of "
                f"{STUFF_ZIP} into {label_dir.parent} (see {README})."
            )
        todo.append((src, dst))
    for src, dst in todo:
        convert_file(src, dst)
    return len(todo)


def verify(root: Path, allow_subset: bool = False, sample: int | None = None) -> str:
    """Check the converted tree; return a one-line summary or raise PrepareError."""
    image_dir, label_dir, ids = _check_tree(root, allow_subset)
    fix = f"run 'python datasets/coco_object/prepare.py --root {root}' (see {README})"
    absent = [f"{i}{OUT_SUFFIX}" for i in ids if not (label_dir / f"{i}{OUT_SUFFIX}").is_file()]
    if absent:
        raise PrepareError(
            f"COCO-Object labels are incomplete: {len(absent)} of {len(ids)} missing under {label_dir} "
            f"(first: {absent[0]}); {fix}."
        )
    checked = evenly_spaced(ids, sample)
    for image_id in checked:
        image_path, label_path = image_dir / f"{image_id}.jpg", label_dir / f"{image_id}{OUT_SUFFIX}"
        try:
            with Image.open(image_path) as im:
                image_size = im.size
        except Exception as exc:  # noqa: BLE001
            raise PrepareError(f"COCO image {image_path} cannot be read ({exc}); re-extract {IMAGES_ZIP}.") from exc
        try:
            with Image.open(label_path) as lab:
                mode, label_size = lab.mode, lab.size
                values = np.unique(np.asarray(lab)) if mode in ("L", "P") else None
        except Exception as exc:  # noqa: BLE001
            raise PrepareError(f"COCO-Object label {label_path} cannot be read ({exc}); {fix}.") from exc
        if values is None:
            raise PrepareError(f"COCO-Object label {label_path} has mode {mode!r}, expected 'L'; {fix}.")
        bad = [int(v) for v in values if int(v) >= NUM_CLASSES and int(v) != IGNORE_INDEX]
        if bad:
            raise PrepareError(
                f"COCO-Object label {label_path} has values {bad[:10]} outside 0..{NUM_CLASSES - 1}; it was not "
                f"written by this script, {fix} with --overwrite."
            )
        if image_size != label_size:
            raise PrepareError(
                f"COCO-Object label {label_path} is {label_size[0]}x{label_size[1]} but image {image_path} is "
                f"{image_size[0]}x{image_size[1]}; {fix} with --overwrite."
            )
    subset = " (subset allowed)" if allow_subset else ""
    return (
        f"OK: COCO-Object {SPLIT} at {root}: {len(ids)} images with labels ({len(checked)} labels checked){subset}"
    )


# ------------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Extract, convert and verify COCO-Object (val2017) for car-bench.")
    parser.add_argument("--root", type=Path, required=True,
                        help="the coco_stuff164k folder: holds (or will hold) images/val2017 and annotations/val2017")
    parser.add_argument("--images-zip", type=Path, help=f"path to {IMAGES_ZIP}, extracted into ROOT/images")
    parser.add_argument("--stuff-zip", type=Path, help=f"path to {STUFF_ZIP}; its val2017/ part goes to ROOT/annotations")
    parser.add_argument("--verify-only", action="store_true", help="do not extract or convert, only verify")
    parser.add_argument("--overwrite", action="store_true", help="re-convert labels that already exist")
    parser.add_argument("--allow-subset", action="store_true",
                        help=f"accept fewer than the official {EXPECTED_IMAGES} val2017 images")
    parser.add_argument("--sample", type=int, default=None, metavar="N",
                        help="decode only N evenly spaced labels when verifying (default: all)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.sample is not None and args.sample < 1:
        parser.error("--sample must be a positive integer")
    if args.verify_only and (args.images_zip or args.stuff_zip or args.overwrite):
        parser.error("--verify-only cannot be combined with --images-zip, --stuff-zip or --overwrite")
    root = Path(args.root).expanduser()
    try:
        zips = ((args.images_zip, IMAGES_ZIP, root / "images"), (args.stuff_zip, STUFF_ZIP, root / "annotations"))
        for zip_path, zip_name, dest in zips:
            if zip_path is not None:
                zip_path = Path(zip_path).expanduser()
                n = safe_extract_zip(zip_path, dest, name=zip_name, readme=README, keep_prefix=f"{SPLIT}/")
                print(f"extracted {n} files of {zip_path} into {dest}", file=sys.stderr)
        if not args.verify_only:
            n = convert(root, allow_subset=args.allow_subset, overwrite=args.overwrite)
            print(f"wrote {n} {OUT_SUFFIX} label(s)", file=sys.stderr)
        summary = verify(root, allow_subset=args.allow_subset, sample=args.sample)
    except PrepareError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
