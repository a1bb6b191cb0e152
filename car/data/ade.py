"""ADE20K: the 150-class SceneParsing benchmark (A-150) and the full 847-class label space (A-847).

ADE20K-150, ``root`` = the ``ADEChallengeData2016`` folder (datasets/ade150/README.md)::

    images/validation/ADE_val_<8 digits>.jpg          2,000 images
    annotations/validation/ADE_val_<8 digits>.png     'L': 0 = other/unlabelled, 1..150 = classes

On-disk ``1..150`` are kept as harness labels ``1..150`` (CaR's evaluation reads these files as
they are, with 151 classes and ``ignore_background``); on-disk ``0`` becomes ``ignore_index``.
The peers' mmseg ``reduce_zero_label`` (0 -> 255, 1..150 -> 0..149) scores the same pixels with the
same classes, one id lower: `bg_protocol` car/standard give identical numbers either way.

ADE-847, ``root`` = the ``ADE20K_2021_17_01`` folder after the detectron2 conversion
(datasets/ade847/README.md)::

    images_detectron2/validation/ADE_val_<8 digits>.jpg     2,000 images (short side <= 512)
    annotations_detectron2/validation/ADE_val_<8 digits>.tif uint16: 0..846 = classes, 65535 = unlabelled

Harness label = tif value + 1 (1..847, CaR's convention); 65535 stays the ignore index (a 16-bit
label space cannot use 255). CaR's official evaluation scores 847 of the 848 ids (``n_class: 847``
leaves out the last class, "adding machine"); this harness scores all 847 classes.
"""

from __future__ import annotations

import numpy as np

from car.data.folder import INVALID, FolderSegmentation, shifted_table

ADE150_CLASSES = 150
ADE847_CLASSES = 847
UINT16_IGNORE = 65535
TIF_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


class ADE20K(FolderSegmentation):
    """ADE20K-150 validation (ADEChallengeData2016), see the module docstring."""

    name = "ADE20K-150"
    readme = "datasets/ade150/README.md"
    prepare = "datasets/ade150/prepare.py"
    fix_missing = "extract ADEChallengeData2016.zip and run {prepare} (see {readme})"

    def __init__(self, root, split: str = "validation", num_classes: int = ADE150_CLASSES + 1, limit=None,
                 on_missing: str = "fail", ignore_index: int = 255):
        super().__init__(root, split, num_classes, limit, on_missing, ignore_index)

    def label_table(self) -> np.ndarray:
        table = np.full(self.num_disk_values, INVALID, dtype=np.int64)
        table[0] = self.ignore_index
        table[1 : self.num_classes] = np.arange(1, self.num_classes)
        return table


class ADE20KFull(FolderSegmentation):
    """ADE-847 validation (ADE20K_2021_17_01 in the detectron2 layout), see the module docstring."""

    name = "ADE-847"
    readme = "datasets/ade847/README.md"
    prepare = "datasets/ade847/prepare.py"
    fix_missing = ("convert ADE20K_2021_17_01 with prepare_ade20k_full_sem_seg.py and check it with {prepare} "
                   "(see {readme})")
    image_dir_pattern = "images_detectron2/{split}"
    label_dir_pattern = "annotations_detectron2/{split}"
    label_suffix = ".tif"
    label_modes = TIF_MODES
    num_disk_values = 65536

    def __init__(self, root, split: str = "validation", num_classes: int = ADE847_CLASSES + 1, limit=None,
                 on_missing: str = "fail", ignore_index: int = UINT16_IGNORE):
        super().__init__(root, split, num_classes, limit, on_missing, ignore_index)

    def label_table(self) -> np.ndarray:
        return shifted_table(self.num_classes, UINT16_IGNORE, self.ignore_index, self.num_disk_values)
