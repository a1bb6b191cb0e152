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

Standard library + numpy + Pillow (+ ``car.data.prepare_coco``, shared with COCO-Stuff-171, and the
``car.data.prepare_driver`` command line). ``main()``
returns 0 on success (one ``OK:`` line on stdout) and 1 on any problem (one ``error:`` line on
stderr). See datasets/coco_object/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: import car from this checkout

from car.data import prepare_coco  # noqa: E402
from car.data.prepare_coco import COCO_THING_IDS, EXPECTED_IMAGES  # noqa: E402
from car.data.prepare_driver import run  # noqa: E402

README = "datasets/coco_object/README.md"
OUT_SUFFIX = "_instanceTrainIds.png"
NUM_CLASSES = 81  # 0 = background, 1..80 = things (index in COCO_THING_IDS + 1)
IGNORE_INDEX = 255


def stuff_to_object_lut() -> np.ndarray:
    """uint8[256] lookup table: COCO-Stuff PNG value (COCO-Stuff id - 1) -> COCO-Object label."""
    lut = np.zeros(256, dtype=np.uint8)
    for index, coco_id in enumerate(COCO_THING_IDS):
        lut[coco_id - 1] = index + 1
    return lut


_LUT = stuff_to_object_lut()


def convert_stuff_map(stuff: np.ndarray) -> np.ndarray:
    """Map a COCO-Stuff label map [H,W] (values 0..181, 255) to COCO-Object labels uint8 [H,W] (0..80)."""
    return prepare_coco.map_stuff(stuff, _LUT)


def convert_file(src: Path, dst: Path) -> None:
    """Convert one COCO-Stuff PNG into a COCO-Object ``*_instanceTrainIds.png`` ('L' mode)."""
    prepare_coco.convert_file(src, dst, convert_stuff_map, README)


LABELS = prepare_coco.CocoLabels("COCO-Object", "datasets/coco_object/prepare.py", README, OUT_SUFFIX,
                                  convert_stuff_map, lambda v: (v < NUM_CLASSES) | (v == IGNORE_INDEX),
                                  f"0..{NUM_CLASSES - 1} (it was not written by this script)")
PREPARATION = prepare_coco.preparation(LABELS, "Extract, convert and verify COCO-Object (val2017) for car-bench.",
                                       f"accept fewer than the official {EXPECTED_IMAGES} val2017 images")


def main(argv: list[str] | None = None) -> int:
    return run(PREPARATION, argv)


if __name__ == "__main__":
    sys.exit(main())
