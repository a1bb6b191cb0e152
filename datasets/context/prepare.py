#!/usr/bin/env python
"""Extract, convert and verify Pascal Context (59 classes + background) for car-bench.

Usage::

    # check the md5, extract the VOC2010 tar, convert trainval_merged.json, verify
    python datasets/context/prepare.py --root <dir>/VOCdevkit/VOC2010 \
        --tar /path/VOCtrainval_03-May-2010.tar --json /path/trainval_merged.json
    # convert into an extracted tree, then verify
    python datasets/context/prepare.py --root <dir>/VOCdevkit/VOC2010 --json /path/trainval_merged.json
    # verify only
    python datasets/context/prepare.py --root <dir>/VOCdevkit/VOC2010 --verify-only

``--root`` is the ``VOCdevkit/VOC2010`` folder, the one car.data.context.PascalContext reads.

Conversion follows mmsegmentation's tools/dataset_converters/pascal_context.py: the PASCAL in Detail
API (``from detail import Detail``) renders each image's class mask in the original Pascal-Context
category ids; the 60 ids of ``CONTEXT60_DETAIL_IDS`` (0 = unlabelled + the 59 classes, sorted
ascending) are mapped to their position 0..59. Any other id is an error (mmseg asserts the same),
unless ``--unknown-to-background`` maps it to 0. Outputs: ``SegmentationClassContext/<id>.png``
('L' mode) and ``ImageSets/SegmentationContext/{train,val}.txt`` (sorted ids).

The Detail API is only needed for conversion; verification uses the standard library, numpy and
Pillow; ``car.data.archives`` checks md5s and extracts the tar safely. ``main()`` returns 0 on
success (one ``OK:`` line) and 1 on any problem (one ``error:`` line).
See datasets/context/README.md.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: import car from this checkout

from car.data.archives import PrepareError, check_digest, read_ids  # noqa: E402
from car.data.prepare_checks import check_labels  # noqa: E402
from car.data.prepare_driver import Archive, Preparation, run  # noqa: E402

README = "datasets/context/README.md"
TAR_NAME = "VOCtrainval_03-May-2010.tar"
TAR_MD5 = "da459979d0c395079b5c75ee67908abb"
JSON_NAME = "trainval_merged.json"
JSON_MD5 = "3c2d0c0656b7be9eb61928ffe885d8ce"
EXPECTED_COUNTS = {"val": 5105, "train": 4998}  # val first: it is the evaluated split
NUM_CLASSES = 60  # 0 = background/unlabelled, 1..59 = classes
LABEL_DIR = "SegmentationClassContext"
SPLIT_DIR = Path("ImageSets") / "SegmentationContext"
DETAIL_INSTALL = (
    "install the PASCAL in Detail API from source: pip install cython && git clone "
    "https://github.com/zhanghang1989/detail-api && cd detail-api/PythonAPI && make && make install "
    "(the PyPI package named 'detail' is an unrelated project)"
)

# Original Pascal-Context (459-class) category ids kept by the 60-class benchmark: 0 (unlabelled) and the
# 59 classes, ascending; the position in this tuple is the output label, so label k is the k-th class of
# mmseg's PascalContextDataset list (background, aeroplane, bag, bed, ..., wood), i.e. of context.txt.
CONTEXT60_DETAIL_IDS = (
    0, 2, 9, 18, 19, 22, 23, 25, 31, 33, 34, 44, 45, 46, 59, 65, 68, 72, 80, 85, 98, 104, 105, 113,
    115, 144, 158, 159, 162, 187, 189, 207, 220, 232, 258, 259, 260, 284, 295, 296, 308, 324, 326,
    347, 349, 354, 355, 360, 366, 368, 397, 415, 416, 420, 424, 427, 440, 445, 454, 458,
)
if len(CONTEXT60_DETAIL_IDS) != NUM_CLASSES or list(CONTEXT60_DETAIL_IDS) != sorted(set(CONTEXT60_DETAIL_IDS)):
    raise RuntimeError("CONTEXT60_DETAIL_IDS must list 60 distinct ascending ids")


def detail_to_context60(mask: np.ndarray, unknown_to_background: bool = False) -> np.ndarray:
    """Map a Detail class mask [H,W] (original category ids, any numeric dtype) to uint8 labels 0..59.

    Raises ValueError for ids that are not whole numbers, and (unless ``unknown_to_background``) for
    ids outside ``CONTEXT60_DETAIL_IDS``; with ``unknown_to_background`` they become 0.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D class mask, got shape {mask.shape}")
    ids = np.rint(mask).astype(np.int64) if mask.dtype.kind == "f" else mask.astype(np.int64)
    if mask.dtype.kind == "f" and not np.array_equal(ids, mask):
        raise ValueError("class mask holds non-integer values")
    table = np.asarray(CONTEXT60_DETAIL_IDS, dtype=np.int64)
    pos = np.searchsorted(table, ids)  # [H,W] candidate position of each id
    pos_clipped = np.minimum(pos, len(table) - 1)
    known = table[pos_clipped] == ids
    if not known.all():
        if not unknown_to_background:
            bad = np.unique(ids[~known])
            raise ValueError(
                f"class ids {bad[:10].tolist()} are not among the 60 Pascal-Context-60 ids"
            )
        pos_clipped = np.where(known, pos_clipped, 0)
    return pos_clipped.astype(np.uint8)


def convert_split(detail, out_dir: Path, unknown_to_background: bool = False) -> list[str]:
    """Write ``<stem>.png`` into ``out_dir`` for every image of a Detail object's phase; return sorted stems.

    ``detail`` needs ``getImgs()`` (image dicts with 'file_name') and ``getMask(img)`` (class mask), as the
    Detail API provides.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    stems = []
    for img in detail.getImgs():
        stem = Path(img["file_name"]).stem
        try:
            label = detail_to_context60(detail.getMask(img), unknown_to_background)
        except ValueError as exc:
            raise PrepareError(
                f"image {stem}: {exc}; {JSON_NAME} is not the expected file (md5 {JSON_MD5}), or pass "
                f"--unknown-to-background to label such pixels 0."
            ) from exc
        tmp = out_dir / f"{stem}.png.tmp"
        Image.fromarray(label, mode="L").save(tmp, format="PNG")
        os.replace(tmp, out_dir / f"{stem}.png")
        stems.append(stem)
    return sorted(stems)


def convert(root: Path, json_path: Path, unknown_to_background: bool = False) -> dict[str, int]:
    """Convert ``json_path`` with the Detail API into ``root``; returns the number of images per split."""
    if not json_path.is_file():
        raise PrepareError(f"{JSON_NAME} not found at {json_path}; download it as described in {README}.")
    image_dir = root / "JPEGImages"
    if not image_dir.is_dir():
        raise PrepareError(f"{image_dir} does not exist; extract {TAR_NAME} first (see {README}).")
    try:
        from detail import Detail  # noqa: PLC0415 - optional dependency, only for conversion
    except ImportError as exc:
        raise PrepareError(f"the Detail API ('from detail import Detail') is not installed: {DETAIL_INSTALL}.") from exc
    if not hasattr(Detail, "getMask"):
        raise PrepareError(f"the installed 'detail' package is not the PASCAL in Detail API: {DETAIL_INSTALL}.")
    counts = {}
    (root / SPLIT_DIR).mkdir(parents=True, exist_ok=True)
    for split in ("train", "val"):
        detail = Detail(str(json_path), str(image_dir), split)
        stems = convert_split(detail, root / LABEL_DIR, unknown_to_background)
        (root / SPLIT_DIR / f"{split}.txt").write_text("".join(s + "\n" for s in stems))
        counts[split] = len(stems)
    return counts


# ------------------------------------------------------------------------------------------ verify


def verify(root: Path, allow_subset: bool = False, sample: int | None = None) -> str:
    """Check the converted Pascal Context tree; return a one-line summary or raise PrepareError."""
    fix = f"re-run datasets/context/prepare.py with --json <path>/{JSON_NAME} (see {README})"
    if not (root / "JPEGImages").is_dir():
        raise PrepareError(
            f"Pascal Context not found: {root / 'JPEGImages'} does not exist; extract {TAR_NAME} and pass the "
            f"VOCdevkit/VOC2010 folder as --root (see {README})."
        )
    missing = [root / LABEL_DIR] if not (root / LABEL_DIR).is_dir() else []
    missing += [root / SPLIT_DIR / f"{s}.txt" for s in EXPECTED_COUNTS if not (root / SPLIT_DIR / f"{s}.txt").is_file()]
    if missing:
        names = ", ".join(str(p.relative_to(root)) for p in missing)
        raise PrepareError(f"Pascal Context tree under {root} is incomplete: missing {names}; {fix}.")
    splits = {s: read_ids(root / SPLIT_DIR / f"{s}.txt") for s in EXPECTED_COUNTS}
    val = splits["val"]
    if not val:
        raise PrepareError(f"{root / SPLIT_DIR / 'val.txt'} is empty; {fix}.")
    for s, ids in splits.items():
        if len(ids) != len(set(ids)):
            raise PrepareError(f"{root / SPLIT_DIR / f'{s}.txt'} lists duplicate ids; {fix}.")
        if not allow_subset and len(ids) != EXPECTED_COUNTS[s]:
            raise PrepareError(
                f"Pascal Context {s} is incomplete: {root / SPLIT_DIR / f'{s}.txt'} lists {len(ids)} of "
                f"{EXPECTED_COUNTS[s]} ids; {fix}, or pass --allow-subset to accept a deliberate subset."
            )
    for folder, ext, what in ((root / "JPEGImages", ".jpg", "images"), (root / LABEL_DIR, ".png", "labels")):
        absent = [f"{i}{ext}" for i in val if not (folder / f"{i}{ext}").is_file()]
        if absent:
            raise PrepareError(
                f"Pascal Context val is incomplete: {len(absent)} of {len(val)} {what} missing under {folder} "
                f"(first: {absent[0]}); {fix}."
            )
    foreign = ("a label that contains 255 is not the mmseg conversion's: detectron2's 'annotations_ctx59' use 0..58 "
               "with 255 = background, a different encoding")
    checked = check_labels(val, lambda i: root / "JPEGImages" / f"{i}.jpg", lambda i: root / LABEL_DIR / f"{i}.png",
                           what="Pascal Context", fix=fix, modes=("L", "P"), allowed=lambda v: v < NUM_CLASSES,
                           allowed_text=f"0..{NUM_CLASSES - 1} ({foreign})", sample=sample)
    subset = " (subset allowed)" if allow_subset else ""
    return (
        f"OK: Pascal Context at {root}: val {len(val)} ids ({checked} labels checked), "
        f"train {len(splits['train'])}{subset}"
    )


def devkit_parent(root: Path, args) -> Path:
    """The tar holds VOCdevkit/VOC2010/: it goes two levels above --root."""
    if root.parts[-2:] != ("VOCdevkit", "VOC2010"):
        raise PrepareError(f"--root must end in VOCdevkit/VOC2010 when --tar is given (got {root}).")
    return root.parents[1]


def convert_step(root: Path, args) -> str | None:
    """Convert --json (md5-checked unless --skip-md5) when given."""
    if args.json is None:
        return None
    json_path = Path(args.json).expanduser()
    if json_path.is_file() and not args.skip_md5:
        check_digest(json_path, JSON_MD5, JSON_NAME)
    counts = convert(root, json_path, args.unknown_to_background)
    return f"wrote {counts['train']} train and {counts['val']} val labels into {root / LABEL_DIR}"


def add_arguments(parser) -> None:
    parser.add_argument("--json", type=Path, help=f"path to {JSON_NAME}; converted with the Detail API")
    parser.add_argument("--unknown-to-background", action="store_true",
                        help="label category ids outside the 60 kept ids as 0 instead of failing")


PREPARATION = Preparation(
    description="Extract, convert and verify Pascal Context (60 classes) for car-bench.",
    readme=README, verify=verify, root_help="the VOCdevkit/VOC2010 folder (existing or to be extracted)",
    archives=[Archive("--tar", TAR_NAME, f"path to {TAR_NAME}; extracted two levels above --root", digest=TAR_MD5,
                      destination=devkit_parent)],
    convert=convert_step, subset_help="accept split lists shorter than the official 5,105 val / 4,998 train ids",
    sample_help="decode only N evenly spaced val labels when verifying (default: all)",
    add_arguments=add_arguments, conflicts=("--json",),
)


def main(argv: list[str] | None = None) -> int:
    return run(PREPARATION, argv)


if __name__ == "__main__":
    sys.exit(main())
