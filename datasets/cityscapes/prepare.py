#!/usr/bin/env python
"""Extract and verify Cityscapes val (500 images, fine annotations) for car-bench.

Usage::

    # check both md5s, extract the val parts safely, verify
    python datasets/cityscapes/prepare.py --data-root <dir> \
        --gtfine-zip /path/gtFine_trainvaltest.zip --leftimg-zip /path/leftImg8bit_trainvaltest.zip
    # verify an extracted tree (--sample N decodes N evenly spaced labels instead of all)
    python datasets/cityscapes/prepare.py --data-root <dir>

``<dir>`` holds (or will hold) ``cityscapes/``, the folder car.data.cityscapes.Cityscapes reads
(``paths.data_root``). Nothing is converted: the loader maps ``*_gtFine_labelIds.png`` to the 19 train
ids itself. Only the ``val`` parts of the zips are extracted. Checks: 500 val images (frankfurt 267,
lindau 59, munster 174), a ``*_gtFine_labelIds.png`` per image, 'L' labels with label ids 0..33 (or
255) of the image's size. ``main()`` returns 0 (one ``OK:`` line) or 1 (one ``error:`` line).
See datasets/cityscapes/README.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from car.data.archives import PrepareError, check_md5, safe_extract_zip  # noqa: E402
from car.data.prepare_checks import check_count, check_labels, check_present, require_dir  # noqa: E402

README = "datasets/cityscapes/README.md"
SUBDIR = "cityscapes"
SPLIT = "val"
ZIPS = {  # --option: (official file name, md5 published on the Cityscapes download page, its folder)
    "gtfine": ("gtFine_trainvaltest.zip", "4237c19de34c8a376e9ba46b495d6f66", "gtFine"),
    "leftimg": ("leftImg8bit_trainvaltest.zip", "0a6e97e94b616a514066c9e2adb0c97f", "leftImg8bit"),
}
EXPECTED_PER_CITY = {"frankfurt": 267, "lindau": 59, "munster": 174}
EXPECTED_IMAGES = sum(EXPECTED_PER_CITY.values())  # 500
IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"
NUM_LABEL_IDS = 34  # 0..33; license plate (-1) is written as 255


def verify(data_root: Path, allow_subset: bool = False, sample: int | None = None) -> str:
    root = data_root / SUBDIR
    fix = f"extract the val parts of {ZIPS['leftimg'][0]} and {ZIPS['gtfine'][0]} into {root} (see {README})"
    image_dir, label_dir = root / "leftImg8bit" / SPLIT, root / "gtFine" / SPLIT
    require_dir(image_dir, "Cityscapes", fix)
    require_dir(label_dir, "Cityscapes", fix)
    ids = sorted(f"{p.parent.name}/{p.name[: -len(IMAGE_SUFFIX)]}" for p in image_dir.glob(f"*/*{IMAGE_SUFFIX}"))
    check_count(ids, EXPECTED_IMAGES, "Cityscapes val", image_dir, fix, allow_subset)
    if not allow_subset:
        counts = {city: sum(1 for i in ids if i.startswith(f"{city}/")) for city in EXPECTED_PER_CITY}
        wrong = {c: n for c, n in counts.items() if n != EXPECTED_PER_CITY[c]}
        if wrong:
            city, n = next(iter(wrong.items()))
            raise PrepareError(f"Cityscapes val is incomplete: {image_dir / city} holds {n} of "
                               f"{EXPECTED_PER_CITY[city]} images; {fix}.")
    check_present(ids, lambda i: label_dir / f"{i}{LABEL_SUFFIX}", "Cityscapes gtFine labels", fix)
    checked = check_labels(ids, lambda i: image_dir / f"{i}{IMAGE_SUFFIX}", lambda i: label_dir / f"{i}{LABEL_SUFFIX}",
                           what="Cityscapes", fix=fix, modes=("L", "P"),
                           allowed=lambda v: (v < NUM_LABEL_IDS) | (v == 255),
                           allowed_text=f"the label ids 0..{NUM_LABEL_IDS - 1} (and 255)", sample=sample)
    subset = " (subset allowed)" if allow_subset else ""
    return (f"OK: Cityscapes {SPLIT} at {root}: {len(ids)} images with gtFine labels ({checked} labels checked)"
            f"{subset}; use paths.data_root={data_root}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Extract (optionally) and verify Cityscapes val for car-bench.")
    parser.add_argument("--data-root", type=Path, required=True, help=f"folder that holds (or will hold) {SUBDIR}/")
    parser.add_argument("--gtfine-zip", type=Path, help=f"path to {ZIPS['gtfine'][0]}")
    parser.add_argument("--leftimg-zip", type=Path, help=f"path to {ZIPS['leftimg'][0]}")
    parser.add_argument("--skip-md5", action="store_true", help="do not check the zips' md5")
    parser.add_argument("--allow-subset", action="store_true", help=f"accept fewer than {EXPECTED_IMAGES} images")
    parser.add_argument("--sample", type=int, default=None, metavar="N",
                        help="decode only N evenly spaced labels when verifying (default: all)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.sample is not None and args.sample < 1:
        parser.error("--sample must be a positive integer")
    data_root = Path(args.data_root).expanduser()
    try:
        for key, zip_path in (("gtfine", args.gtfine_zip), ("leftimg", args.leftimg_zip)):
            if zip_path is None:
                continue
            name, md5, folder = ZIPS[key]
            zip_path = Path(zip_path).expanduser()
            if not zip_path.is_file():
                raise PrepareError(f"zip not found: {zip_path}; download {name} (see {README}).")
            if not args.skip_md5:
                check_md5(zip_path, md5, name)
            n = safe_extract_zip(zip_path, data_root / SUBDIR, name=name, readme=README, keep_prefix=f"{folder}/{SPLIT}/")
            print(f"extracted {n} files of {zip_path} into {data_root / SUBDIR}", file=sys.stderr)
        summary = verify(data_root, allow_subset=args.allow_subset, sample=args.sample)
    except PrepareError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
