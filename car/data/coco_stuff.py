"""COCO-Stuff-171: COCO val2017 with the 171 used stuff+thing classes (mmseg's COCO-Stuff-164k).

``root`` = the same ``coco`` folder as COCO-Object (mmseg "coco_stuff164k" layout)::

    images/val2017/<12-digit id>.jpg                      5,000 images
    annotations/val2017/<id>_labelTrainIds.png            'L': 0..170 = classes, 255 = unlabelled

The ``*_labelTrainIds.png`` are mmseg's conversion of the COCO-Stuff maps (80 things in COCO order,
then the 91 stuff classes by COCO-Stuff id), written by datasets/coco_stuff/prepare.py. Harness
label = file value + 1 (1..171); 255 stays the ignore index. The peers' cls_coco_stuff.txt lists
the classes in the same order.
"""

from __future__ import annotations

import numpy as np

from car.data.folder import FolderSegmentation, shifted_table

COCO_STUFF_CLASSES = 171
LABEL_SUFFIX = "_labelTrainIds.png"


class COCOStuff(FolderSegmentation):
    name = "COCO-Stuff-171"
    readme = "datasets/coco_stuff/README.md"
    prepare = "datasets/coco_stuff/prepare.py"
    fix_missing = "run {prepare} to convert the COCO-Stuff maps (see {readme})"
    label_suffix = LABEL_SUFFIX

    def __init__(self, root, split: str = "val2017", num_classes: int = COCO_STUFF_CLASSES + 1, limit=None,
                 on_missing: str = "fail", ignore_index: int = 255):
        super().__init__(root, split, num_classes, limit, on_missing, ignore_index)

    def label_table(self) -> np.ndarray:
        return shifted_table(self.num_classes, 255, self.ignore_index, self.num_disk_values)
