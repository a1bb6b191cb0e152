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

from torch.utils.data import Dataset

from car.data.common import check_same_size, read_label, read_rgb, read_split_file
from car.errors import CarError

README = "datasets/context/README.md"


class PascalContext(Dataset):
    """Pascal Context samples as {"image", "target", "image_id"} dicts.

    Args:
        root: the ``VOCdevkit/VOC2010`` folder.
        split: name of a file in ``ImageSets/SegmentationContext`` ("val" or "train").
        num_classes: number of label classes including background (60).
        limit: keep only the first ``limit`` ids of the split (None = all).
    """

    ignore_index = 255

    def __init__(self, root: str | Path, split: str = "val", num_classes: int = 60, limit: int | None = None):
        self.root = Path(root).expanduser()
        self.split = split
        self.num_classes = num_classes
        if not (self.root / "JPEGImages").is_dir():
            raise CarError(
                f"Pascal Context not found at {self.root}: extract VOCtrainval_03-May-2010.tar so that "
                f"{self.root}/JPEGImages exists (see {README}), or set the dataset root to the VOCdevkit/VOC2010 folder."
            )
        if not (self.root / "SegmentationClassContext").is_dir():
            raise CarError(
                f"Pascal Context at {self.root} has no SegmentationClassContext folder: convert "
                f"trainval_merged.json with datasets/context/prepare.py (see {README})."
            )
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise CarError(f"limit must be a positive integer or None, got {limit!r}: fix the dataset limit setting.")

        ids = read_split_file(self.root / "ImageSets" / "SegmentationContext" / f"{split}.txt", readme=README)
        self.ids: list[str] = ids[:limit] if limit is not None else ids
        self._check_files_exist()

    def _image_path(self, image_id: str) -> Path:
        return self.root / "JPEGImages" / f"{image_id}.jpg"

    def _label_path(self, image_id: str) -> Path:
        return self.root / "SegmentationClassContext" / f"{image_id}.png"

    def _check_files_exist(self) -> None:
        """Fail before evaluation starts if any listed image or label is missing (cheap stat calls)."""
        missing = [p for i in self.ids for p in (self._image_path(i), self._label_path(i)) if not p.is_file()]
        if missing:
            raise CarError(
                f"{len(missing)} file(s) listed in the Pascal Context {self.split} split are missing, e.g. "
                f"{missing[0]}: re-extract VOCtrainval_03-May-2010.tar and re-run datasets/context/prepare.py "
                f"(see {README})."
            )

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict:
        image_id = self.ids[index]
        image = read_rgb(self._image_path(image_id))  # uint8 [H,W,3]
        target = read_label(self._label_path(image_id), self.num_classes, self.ignore_index)  # int64 [H,W]
        check_same_size(image, target, image_id)
        return {"image": image, "target": target, "image_id": image_id}

    def __repr__(self) -> str:
        return f"PascalContext(root={str(self.root)!r}, split={self.split!r}, num_samples={len(self)})"
