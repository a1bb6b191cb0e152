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

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: import car from this checkout

from car.data.archives import PrepareError  # noqa: E402
from car.data.prepare_checks import LabelFolders, verify_folders  # noqa: E402
from car.data.prepare_driver import Archive, Preparation, run  # noqa: E402

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


def city_ids(image_dir: Path) -> list[str]:
    return sorted(f"{p.parent.name}/{p.name[: -len(IMAGE_SUFFIX)]}" for p in image_dir.glob(f"*/*{IMAGE_SUFFIX}"))


def verify(data_root: Path, allow_subset: bool = False, sample: int | None = None) -> str:
    root = data_root / SUBDIR
    fix = f"extract the val parts of {ZIPS['leftimg'][0]} and {ZIPS['gtfine'][0]} into {root} (see {README})"
    tree = LabelFolders("Cityscapes", SPLIT, root / "leftImg8bit" / SPLIT, root / "gtFine" / SPLIT, EXPECTED_IMAGES,
                        ("L", "P"), lambda v: (v < NUM_LABEL_IDS) | (v == 255),
                        f"the label ids 0..{NUM_LABEL_IDS - 1} (and 255)", IMAGE_SUFFIX, LABEL_SUFFIX, "gtFine labels")

    def check_cities(ids: list[str]) -> None:
        counts = {city: sum(1 for i in ids if i.startswith(f"{city}/")) for city in EXPECTED_PER_CITY}
        wrong = {c: n for c, n in counts.items() if n != EXPECTED_PER_CITY[c]}
        if wrong and not allow_subset:
            city, n = next(iter(wrong.items()))
            raise PrepareError(f"Cityscapes val is incomplete: {tree.image_dir / city} holds {n} of "
                               f"{EXPECTED_PER_CITY[city]} images; {fix}.")

    _, summary = verify_folders(tree, root, fix, allow_subset, sample, ids=city_ids, check_ids=check_cities)
    return f"OK: {summary}; use paths.data_root={data_root}"


def into_root(root: Path, args) -> Path:
    return root / SUBDIR


PREPARATION = Preparation(
    description="Extract (optionally) and verify Cityscapes val for car-bench.", readme=README, verify=verify,
    subset_help=f"accept fewer than {EXPECTED_IMAGES} images", root_option="--data-root",
    root_help=f"folder that holds (or will hold) {SUBDIR}/",
    archives=[Archive(f"--{key}-zip", name, f"path to {name}", digest=md5, keep_prefix=f"{folder}/{SPLIT}/",
                      destination=into_root) for key, (name, md5, folder) in ZIPS.items()])


def main(argv: list[str] | None = None) -> int:
    return run(PREPARATION, argv)


if __name__ == "__main__":
    sys.exit(main())
