"""Pascal Context (VOC2010 images, 59 classes + background) in the mmsegmentation layout.

Expected layout under ``root`` (the ``VOCdevkit/VOC2010`` folder)::

    JPEGImages/<id>.jpg
    SegmentationClassContext/<id>.png            'L' or 'P': 0 = background/unlabelled, 1..59 = classes
    ImageSets/SegmentationContext/{train,val}.txt

Label ids 1..59 follow the order of shared/data/class_names/car/context.txt (airplane, bag, bed, ...,
wood), i.e. the 59 Pascal-Context category ids sorted ascending (mmseg's converter). The labels are
written by ``datasets/context/prepare.py``; the official val split has 5,105 images.
"""

from __future__ import annotations

from pathlib import Path

from car.data.voc import VOCSegmentation


class PascalContext(VOCSegmentation):
    """Pascal Context samples as {"image", "target", "image_id"} dicts (the VOC folder layout).

    Args:
        root: the ``VOCdevkit/VOC2010`` folder.
        split: name of a file in ``ImageSets/SegmentationContext`` ("val" or "train").
        num_classes: number of label classes including background (60).
        limit: keep only the first ``limit`` ids of the split (None = all).
        on_missing: "fail" or "skip", as for VOC.
    """

    label_dir = "SegmentationClassContext"
    split_dir = "SegmentationContext"
    readme = "datasets/context/README.md"
    not_found = ("Pascal Context not found at {root}: extract VOCtrainval_03-May-2010.tar so that {root}/JPEGImages "
                 "exists (see {readme}), or set the dataset root to the VOCdevkit/VOC2010 folder.")
    no_labels = ("Pascal Context at {root} has no SegmentationClassContext folder: convert trainval_merged.json "
                 "with datasets/context/prepare.py (see {readme}).")
    files_missing = ("{n} file(s) listed in the Pascal Context {split} split are missing, e.g. {first}: re-extract "
                     "VOCtrainval_03-May-2010.tar and re-run datasets/context/prepare.py (see {readme}).")

    def __init__(self, root: str | Path, split: str = "val", num_classes: int = 60, limit: int | None = None,
                 on_missing: str = "fail"):
        super().__init__(root, split, num_classes, limit, on_missing)
