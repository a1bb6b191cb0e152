#!/usr/bin/env python
"""Extract and verify ADE20K-150 (SceneParsing, ADEChallengeData2016) for car-bench.

Usage::

    # check the sha1, extract safely, verify
    python datasets/ade150/prepare.py --data-root <dir> --zip /path/ADEChallengeData2016.zip
    # verify an extracted tree (--sample N decodes N evenly spaced labels instead of all)
    python datasets/ade150/prepare.py --data-root <dir>

``<dir>`` holds (or will hold) ``ADEChallengeData2016/``, the folder car.data.ade.ADE20K reads
(``paths.data_root``). Nothing is converted: the loader reads the official annotations (0 = other,
1..150 = classes). Checks: exactly 2,000 validation images, an annotation for each, 'L' PNGs with
values 0..150 of the size of their image. ``main()`` returns 0 (one ``OK:`` line) or 1 (one
``error:`` line). See datasets/ade150/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: import car from this checkout

from car.data.prepare_checks import LabelFolders, verify_folders  # noqa: E402
from car.data.prepare_driver import Archive, Preparation, run  # noqa: E402

README = "datasets/ade150/README.md"
ZIP_NAME = "ADEChallengeData2016.zip"
ZIP_SHA1 = "219e1696abb36c8ba3a3afe7fb2f4b4606a897c7"  # GluonCV's ADE20K download script (sha1)
SUBDIR = "ADEChallengeData2016"
SPLIT = "validation"
EXPECTED_IMAGES = 2000
NUM_CLASSES = 150  # on disk 1..150, 0 = other


def verify(data_root: Path, allow_subset: bool = False, sample: int | None = None) -> str:
    root = data_root / SUBDIR
    tree = LabelFolders("ADE20K-150", SPLIT, root / "images" / SPLIT, root / "annotations" / SPLIT, EXPECTED_IMAGES,
                        ("L", "P"), lambda v: (v >= 0) & (v <= NUM_CLASSES), f"0..{NUM_CLASSES}", labels="annotations")
    fix = f"re-extract {ZIP_NAME} into {data_root} (see {README})"
    _, summary = verify_folders(tree, root, fix, allow_subset, sample)
    return f"OK: {summary}; use paths.data_root={data_root}"


PREPARATION = Preparation(
    description="Extract (optionally) and verify ADE20K-150 for car-bench.", readme=README, verify=verify,
    root_option="--data-root", root_help=f"folder that holds (or will hold) {SUBDIR}/",
    archives=[Archive("--zip", ZIP_NAME, f"path to {ZIP_NAME}; sha1-checked and extracted into DATA_ROOT",
                      digest=ZIP_SHA1, algorithm="sha1", keep_prefix=f"{SUBDIR}/")],
    subset_help=f"accept fewer than {EXPECTED_IMAGES} images")


def main(argv: list[str] | None = None) -> int:
    return run(PREPARATION, argv)


if __name__ == "__main__":
    sys.exit(main())
