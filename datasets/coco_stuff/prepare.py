#!/usr/bin/env python
"""Extract, convert and verify COCO-Stuff-171 (COCO val2017, 171 stuff+thing classes) for car-bench.

Usage::

    # extract both zips, convert the COCO-Stuff maps, verify
    python datasets/coco_stuff/prepare.py --root <dir>/coco \
        --images-zip /path/val2017.zip --stuff-zip /path/stuffthingmaps_trainval2017.zip
    # convert (where outputs are missing) and verify an extracted tree
    python datasets/coco_stuff/prepare.py --root <dir>/coco
    # verify only
    python datasets/coco_stuff/prepare.py --root <dir>/coco --verify-only

``--root`` is the folder the loader (car.data.coco_stuff.COCOStuff) reads, the same ``coco`` folder as
COCO-Object: ``images/val2017/`` and ``annotations/val2017/``.

Conversion (mmsegmentation's tools/dataset_converters/coco_stuff164k.py, the files the peers read):
a COCO-Stuff map stores ``COCO-Stuff id - 1`` (0..181, 255 unlabelled). The 171 ids in use (the 80
COCO thing categories, then the 91 stuff classes 92..182) become 0..170 in id order; the 11 unused
thing ids and 255 become 255. Output: ``<id>_labelTrainIds.png`` ('L').

Standard library + numpy + Pillow. ``main()`` returns 0 (one ``OK:`` line) or 1 (one ``error:`` line).
See datasets/coco_stuff/README.md.
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

from car.data.archives import PrepareError, safe_extract_zip  # noqa: E402
from car.data.prepare_checks import check_count, check_labels, check_present, require_dir, sorted_stems  # noqa: E402

README = "datasets/coco_stuff/README.md"
SPLIT = "val2017"
EXPECTED_IMAGES = 5000
IMAGES_ZIP = "val2017.zip"
STUFF_ZIP = "stuffthingmaps_trainval2017.zip"
OUT_SUFFIX = "_labelTrainIds.png"
DERIVED_SUFFIXES = (OUT_SUFFIX, "_instanceTrainIds.png")  # this script's outputs / COCO-Object's
NUM_CLASSES = 171
IGNORE = 255

# COCO category ids of the 80 thing classes, in COCO order (datasets/coco_object/prepare.py has the same).
COCO_THING_IDS = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28,
    31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55,
    56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84,
    85, 86, 87, 88, 89, 90,
)
STUFF_IDS = tuple(range(92, 183))  # the 91 stuff classes
USED_IDS = COCO_THING_IDS + STUFF_IDS
if len(USED_IDS) != NUM_CLASSES or list(USED_IDS) != sorted(set(USED_IDS)):  # guards the tables above
    raise RuntimeError("the COCO-Stuff ids in use must be 171 distinct ascending ids")


def stuff_to_train_lut() -> np.ndarray:
    """int16[256]: COCO-Stuff PNG value -> train id 0..170, 255 for unused ids and unlabelled, -1 impossible."""
    lut = np.full(256, -1, dtype=np.int16)
    lut[:182] = IGNORE  # COCO-Stuff ids 1..182 exist; the unused thing ids stay unlabelled
    lut[IGNORE] = IGNORE
    for train_id, coco_id in enumerate(USED_IDS):
        lut[coco_id - 1] = train_id
    return lut


_LUT = stuff_to_train_lut()


def convert_stuff_map(stuff: np.ndarray) -> np.ndarray:
    """COCO-Stuff label map [H,W] (0..181, 255) -> train ids uint8 [H,W] (0..170, 255)."""
    stuff = np.asarray(stuff)
    if stuff.ndim != 2:
        raise ValueError(f"expected a 2-D label map, got shape {stuff.shape}")
    out = _LUT[stuff.astype(np.int64).clip(0, 255)]
    bad = np.unique(stuff[(out < 0) | (stuff < 0) | (stuff > 255)])
    if bad.size:
        raise ValueError(f"values {bad[:10].tolist()} are not COCO-Stuff labels (0..181 or 255)")
    return out.astype(np.uint8)


def convert_file(src: Path, dst: Path) -> None:
    try:
        with Image.open(src) as im:
            im.load()
            mode, stuff = im.mode, np.array(im)
    except Exception as exc:  # noqa: BLE001 - any decoder error means a broken file
        raise PrepareError(f"COCO-Stuff label {src} cannot be read ({exc}); re-extract {STUFF_ZIP} (see {README}).") from exc
    if mode not in ("L", "P"):
        raise PrepareError(f"COCO-Stuff label {src} has mode {mode!r}, expected an 'L' PNG of COCO-Stuff ids - 1; it "
                           f"is not from {STUFF_ZIP} (see {README}).")
    try:
        out = convert_stuff_map(stuff)
    except ValueError as exc:
        raise PrepareError(f"COCO-Stuff label {src}: {exc}; it is not from {STUFF_ZIP} (see {README}).") from exc
    tmp = dst.with_name(dst.name + ".tmp")
    Image.fromarray(out, mode="L").save(tmp, format="PNG")
    os.replace(tmp, dst)  # never leave a half-written label behind


def _dirs(root: Path, allow_subset: bool) -> tuple[Path, Path, list[str]]:
    image_dir, label_dir = root / "images" / SPLIT, root / "annotations" / SPLIT
    fix = f"extract {IMAGES_ZIP} and {STUFF_ZIP} (--images-zip/--stuff-zip, see {README})"
    require_dir(image_dir, "COCO-Stuff", fix)
    require_dir(label_dir, "COCO-Stuff", fix)
    ids = sorted_stems(image_dir, ".jpg")
    check_count(ids, EXPECTED_IMAGES, "COCO val2017", image_dir, f"re-extract {IMAGES_ZIP} (see {README})",
                allow_subset)
    return image_dir, label_dir, ids


def convert(root: Path, allow_subset: bool = False, overwrite: bool = False) -> int:
    """Write ``<id>_labelTrainIds.png`` for every image that lacks one; returns how many were written."""
    _, label_dir, ids = _dirs(root, allow_subset)
    todo = []
    for image_id in ids:
        dst = label_dir / f"{image_id}{OUT_SUFFIX}"
        if dst.is_file() and not overwrite:
            continue
        src = label_dir / f"{image_id}.png"
        if not src.is_file():
            raise PrepareError(f"COCO-Stuff label {src} is missing for image {image_id}.jpg; extract the val2017/ part "
                               f"of {STUFF_ZIP} into {label_dir.parent} (see {README}).")
        todo.append((src, dst))
    for src, dst in todo:
        convert_file(src, dst)
    return len(todo)


def verify(root: Path, allow_subset: bool = False, sample: int | None = None) -> str:
    image_dir, label_dir, ids = _dirs(root, allow_subset)
    fix = f"run 'python datasets/coco_stuff/prepare.py --root {root}' (see {README})"
    check_present(ids, lambda i: label_dir / f"{i}{OUT_SUFFIX}", "COCO-Stuff-171 labels", fix)
    checked = check_labels(ids, lambda i: image_dir / f"{i}.jpg", lambda i: label_dir / f"{i}{OUT_SUFFIX}",
                           what="COCO-Stuff-171", fix=f"{fix} with --overwrite", modes=("L", "P"),
                           allowed=lambda v: (v < NUM_CLASSES) | (v == IGNORE),
                           allowed_text=f"0..{NUM_CLASSES - 1} and {IGNORE}", sample=sample)
    subset = " (subset allowed)" if allow_subset else ""
    return f"OK: COCO-Stuff-171 {SPLIT} at {root}: {len(ids)} images with labels ({checked} labels checked){subset}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Extract, convert and verify COCO-Stuff-171 (val2017) for car-bench.")
    parser.add_argument("--root", type=Path, required=True,
                        help="the coco_stuff164k folder: holds (or will hold) images/val2017 and annotations/val2017")
    parser.add_argument("--images-zip", type=Path, help=f"path to {IMAGES_ZIP}, extracted into ROOT/images")
    parser.add_argument("--stuff-zip", type=Path, help=f"path to {STUFF_ZIP}; its val2017/ part goes to ROOT/annotations")
    parser.add_argument("--verify-only", action="store_true", help="do not extract or convert, only verify")
    parser.add_argument("--overwrite", action="store_true", help="re-convert labels that already exist")
    parser.add_argument("--allow-subset", action="store_true", help=f"accept fewer than {EXPECTED_IMAGES} images")
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
                n = safe_extract_zip(Path(zip_path).expanduser(), dest, name=zip_name, readme=README,
                                     keep_prefix=f"{SPLIT}/")
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
