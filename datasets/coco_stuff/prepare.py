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

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: import car from this checkout

from car.data import prepare_coco  # noqa: E402
from car.data.prepare_coco import COCO_THING_IDS, EXPECTED_IMAGES  # noqa: E402
from car.data.prepare_driver import run  # noqa: E402

README = "datasets/coco_stuff/README.md"
OUT_SUFFIX = "_labelTrainIds.png"
NUM_CLASSES = 171
IGNORE = 255

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
    return prepare_coco.map_stuff(stuff, _LUT)


LABELS = prepare_coco.CocoLabels("COCO-Stuff-171", "datasets/coco_stuff/prepare.py", README, OUT_SUFFIX,
                                  convert_stuff_map,
                                  lambda v: (v < NUM_CLASSES) | (v == IGNORE), f"0..{NUM_CLASSES - 1} and {IGNORE}")
PREPARATION = prepare_coco.preparation(LABELS, "Extract, convert and verify COCO-Stuff-171 (val2017) for car-bench.",
                                       f"accept fewer than {EXPECTED_IMAGES} images")


def main(argv: list[str] | None = None) -> int:
    return run(PREPARATION, argv)


if __name__ == "__main__":
    sys.exit(main())
