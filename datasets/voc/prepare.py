#!/usr/bin/env python
"""Extract and verify Pascal VOC 2012 (segmentation) for the CaR benchmark harness.

Usage::

    # check the md5, extract safely, then verify
    python datasets/voc/prepare.py --tar /path/VOCtrainval_11-May-2012.tar --data-root <dir>
    # verify an existing tree only
    python datasets/voc/prepare.py --data-root <dir> --verify-only

``<dir>`` is the folder that contains (or will contain) ``VOCdevkit/``; it is what the harness
calls ``paths.data_root`` (or the ``CAR_DATA_ROOT`` environment variable).

Only the standard library, numpy, Pillow and ``car.data.archives`` (md5 check, safe tar
extraction) are used. ``main()`` returns an exit code: 0 on success (one-line summary on
stdout), 1 on any problem (one message on stderr).
See datasets/voc/README.md.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: import car from this checkout

from car.data.archives import PrepareError, read_ids  # noqa: E402
from car.data.prepare_checks import check_labels  # noqa: E402
from car.data.prepare_driver import Archive, Preparation, run  # noqa: E402

TAR_NAME = "VOCtrainval_11-May-2012.tar"
TAR_MD5 = "6cd6e144f989b92b3379bac3b3de84fd"
VOC_SUBDIR = Path("VOCdevkit") / "VOC2012"
SPLITS = ("train", "val", "trainval")
EXPECTED_COUNTS = {"train": 1464, "val": 1449, "trainval": 2913}
NUM_CLASSES = 21  # 0 = background, 1..20 = object classes
IGNORE_INDEX = 255  # void / object border
VALID_LABELS = frozenset(range(NUM_CLASSES)) | {IGNORE_INDEX}
README = "datasets/voc/README.md"


# ------------------------------------------------------------------------------------------ verify


def verify(data_root: Path, allow_subset: bool = False, sample: int | None = None) -> str:
    """Check the VOC 2012 tree under ``data_root``; return a one-line summary or raise PrepareError."""
    root = data_root / VOC_SUBDIR
    fix = f"re-extract {TAR_NAME} into {data_root} (see {README})"
    if not root.is_dir():
        hint = ""
        nested = sorted(data_root.glob(f"*/{VOC_SUBDIR.as_posix()}")) if data_root.is_dir() else []
        if nested:
            hint = f" (found {nested[0]}: pass --data-root {nested[0].parents[1]})"
        raise PrepareError(
            f"Pascal VOC 2012 not found: {root} does not exist{hint}; download {TAR_NAME} and run "
            f"'python datasets/voc/prepare.py --tar <path>/{TAR_NAME} --data-root {data_root}' (see {README})."
        )

    image_dir, label_dir = root / "JPEGImages", root / "SegmentationClass"
    split_dir = root / "ImageSets" / "Segmentation"
    missing = [p for p in (image_dir, label_dir) if not p.is_dir()]
    missing += [split_dir / f"{s}.txt" for s in SPLITS if not (split_dir / f"{s}.txt").is_file()]
    if missing:
        names = ", ".join(str(p.relative_to(root)) for p in missing)
        raise PrepareError(f"VOC2012 tree under {root} is incomplete: missing {names}; {fix}.")

    splits = {s: read_ids(split_dir / f"{s}.txt") for s in SPLITS}
    for s in SPLITS:
        dupes = len(splits[s]) - len(set(splits[s]))
        if dupes:
            raise PrepareError(f"{split_dir / f'{s}.txt'} lists {dupes} duplicate id(s); {fix}.")
    val = splits["val"]
    if not val:
        raise PrepareError(f"{split_dir / 'val.txt'} is empty; {fix}.")
    if not allow_subset:
        for s in ("val", "train", "trainval"):
            got, want = len(splits[s]), EXPECTED_COUNTS[s]
            if got != want:
                raise PrepareError(
                    f"VOC2012 {s} is incomplete: {split_dir / f'{s}.txt'} lists {got} of {want} ids; {fix} "
                    f"(or pass --allow-subset to accept a deliberate subset)."
                )

    for folder, ext, what in ((image_dir, ".jpg", "images"), (label_dir, ".png", "labels")):
        absent = [f"{i}{ext}" for i in val if not (folder / f"{i}{ext}").is_file()]
        if absent:
            raise PrepareError(
                f"VOC2012 val is incomplete: {len(absent)} of {len(val)} {what} missing under {folder} "
                f"(first: {absent[0]}); {fix}."
            )

    checked = check_labels(val, lambda i: image_dir / f"{i}.jpg", lambda i: label_dir / f"{i}.png", what="VOC2012",
                           fix=fix, modes=("P", "L"), allowed=lambda v: (v < NUM_CLASSES) | (v == IGNORE_INDEX),
                           allowed_text=f"0..{NUM_CLASSES - 1} and {IGNORE_INDEX}", sample=sample)

    n_jpeg = sum(1 for e in os.scandir(image_dir) if e.name.endswith(".jpg"))
    subset = " (subset allowed)" if allow_subset else ""
    return (
        f"OK: Pascal VOC 2012 at {root}: val {len(val)} ids ({checked} labels checked), "
        f"train {len(splits['train'])}, trainval {len(splits['trainval'])}, JPEGImages {n_jpeg} files{subset}; "
        f"use paths.data_root={data_root}"
    )


PREPARATION = Preparation(
    description="Extract (optionally) and verify Pascal VOC 2012 segmentation for car-bench.",
    readme=README,
    verify=verify,
    root_option="--data-root",
    root_help="folder that contains (or will contain) VOCdevkit/",
    root_env="CAR_DATA_ROOT",
    archives=[Archive("--tar", TAR_NAME, f"path to {TAR_NAME} to extract into --data-root", digest=TAR_MD5)],
    subset_help="accept split lists shorter than the official 1,449 val / 1,464 train ids",
    sample_help="decode only N evenly spaced val labels (default: all of val)",
)


def main(argv: list[str] | None = None) -> int:
    return run(PREPARATION, argv)


if __name__ == "__main__":
    sys.exit(main())
