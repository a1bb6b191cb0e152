"""Cityscapes val (500 images, 2048x1024) with the 19 evaluation classes.

``root`` = the ``cityscapes`` folder holding the two official packages (datasets/cityscapes/README.md)::

    leftImg8bit/val/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    gtFine/val/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png     'L': the 34 label ids (0..33)

Ids are ``<city>/<city>_<seq>_<frame>``. The label ids become the 19 train ids of cityscapesScripts
(road 7, sidewalk 8, building 11, wall 12, fence 13, pole 17, traffic light 19, traffic sign 20,
vegetation 21, terrain 22, sky 23, person 24, rider 25, car 26, truck 27, bus 28, train 31,
motorcycle 32, bicycle 33 -> 0..18), + 1 as harness labels (1..19); every other label id (void,
ground, parking, rail track, guard rail, bridge, tunnel, polegroup, caravan, trailer, ...) and 255
(license plate written as -1) become the ignore index: the same pixels and classes as the peers'
``*_gtFine_labelTrainIds.png``.
"""

from __future__ import annotations

import numpy as np

from car.data.folder import INVALID, FolderSegmentation

# Cityscapes label id of each train id 0..18 (cityscapesScripts labels.py).
TRAIN_LABEL_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
NUM_LABEL_IDS = 34  # 0..33 (unlabeled .. bicycle)
IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"


class Cityscapes(FolderSegmentation):
    name = "Cityscapes"
    readme = "datasets/cityscapes/README.md"
    prepare = "datasets/cityscapes/prepare.py"
    fix_missing = "extract gtFine_trainvaltest.zip and check the tree with {prepare} (see {readme})"
    image_dir_pattern = "leftImg8bit/{split}"
    label_dir_pattern = "gtFine/{split}"
    image_suffix = IMAGE_SUFFIX
    label_suffix = LABEL_SUFFIX
    label_modes = ("L", "P", "I")

    def __init__(self, root, split: str = "val", num_classes: int = len(TRAIN_LABEL_IDS) + 1, limit=None,
                 on_missing: str = "fail", ignore_index: int = 255):
        super().__init__(root, split, num_classes, limit, on_missing, ignore_index)

    def label_table(self) -> np.ndarray:
        table = np.full(self.num_disk_values, INVALID, dtype=np.int64)
        table[:NUM_LABEL_IDS] = self.ignore_index
        table[255] = self.ignore_index
        for train_id, label_id in enumerate(TRAIN_LABEL_IDS[: self.num_classes - 1]):
            table[label_id] = train_id + 1
        return table

    def _list_ids(self) -> list[str]:
        """``<city>/<stem>`` of every ``*_leftImg8bit.png`` one folder below the split folder, sorted."""
        return sorted(f"{p.parent.name}/{p.name[: -len(IMAGE_SUFFIX)]}"
                      for p in self.image_dir.glob(f"*/*{IMAGE_SUFFIX}")
                      if p.is_file())
