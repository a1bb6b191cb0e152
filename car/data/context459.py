"""Pascal Context with its full 459-class label space (PC-459), in the detectron2 layout.

``root`` = the ``pascal_ctx_d2`` folder written by datasets/context459/prepare.py::

    images/validation/<VOC2010 id>.jpg                5,105 images (the Context-59/60 val split)
    annotations_ctx459/validation/<id>.tif            uint16: 0..458 = classes, 65535 = unlabelled

Harness label = tif value + 1 (1..459, CaR's convention: its loader adds 1 and scores 460 ids with
``ignore_background``); 65535 stays the ignore index.
"""

from __future__ import annotations

import numpy as np

from car.data.ade import TIF_MODES, UINT16_IGNORE
from car.data.folder import FolderSegmentation, shifted_table

CONTEXT459_CLASSES = 459


class PascalContext459(FolderSegmentation):
    name = "Pascal Context-459"
    readme = "datasets/context459/README.md"
    prepare = "datasets/context459/prepare.py"
    fix_missing = "run {prepare} with the Pascal-Context trainval.tar.gz (see {readme})"
    image_dir_pattern = "images/{split}"
    label_dir_pattern = "annotations_ctx459/{split}"
    label_suffix = ".tif"
    label_modes = TIF_MODES
    num_disk_values = 65536

    def __init__(self, root, split: str = "validation", num_classes: int = CONTEXT459_CLASSES + 1, limit=None,
                 on_missing: str = "fail", ignore_index: int = UINT16_IGNORE):
        super().__init__(root, split, num_classes, limit, on_missing, ignore_index)

    def label_table(self) -> np.ndarray:
        return shifted_table(self.num_classes, UINT16_IGNORE, self.ignore_index, self.num_disk_values)
