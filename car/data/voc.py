"""Pascal VOC 2012 semantic segmentation (class names come from the configs, not from here).

Expected layout under ``root`` (the ``VOCdevkit/VOC2012`` folder)::

    JPEGImages/<id>.jpg
    SegmentationClass/<id>.png            palette PNG: 0 = background, 1..20 = classes, 255 = ignore
    ImageSets/Segmentation/{train,val,trainval}.txt
"""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from car.data.common import check_same_size, read_label, read_rgb, read_split_file
from car.errors import CarError

README = "datasets/voc/README.md"


class VOCSegmentation(Dataset):
    """Pascal VOC 2012 segmentation samples as {"image", "target", "image_id"} dicts.

    Args:
        root: the ``VOCdevkit/VOC2012`` folder.
        split: name of a file in ``ImageSets/Segmentation`` (e.g. "val", "train", "trainval").
        num_classes: number of label classes including background (21 for VOC).
        limit: keep only the first ``limit`` ids of the split (None = all).
    """

    ignore_index = 255

    def __init__(self, root: str | Path, split: str = "val", num_classes: int = 21, limit: int | None = None):
        self.root = Path(root).expanduser()
        self.split = split
        self.num_classes = num_classes
        if not (self.root / "JPEGImages").is_dir():
            raise CarError(
                f"Pascal VOC 2012 not found at {self.root}: download VOCtrainval_11-May-2012.tar and extract it "
                f"so that {self.root}/JPEGImages exists (see {README}), "
                f"or set paths.data_root=<dir containing VOCdevkit>."
            )
        if not (self.root / "SegmentationClass").is_dir():
            raise CarError(
                f"Pascal VOC 2012 at {self.root} has no SegmentationClass folder: extract the full "
                f"VOCtrainval_11-May-2012.tar there (see {README})."
            )
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise CarError(f"limit must be a positive integer or None, got {limit!r}: fix the dataset limit setting.")

        ids = read_split_file(self.root / "ImageSets" / "Segmentation" / f"{split}.txt", readme=README)
        self.ids: list[str] = ids[:limit] if limit is not None else ids
        self._check_files_exist()

    def _image_path(self, image_id: str) -> Path:
        return self.root / "JPEGImages" / f"{image_id}.jpg"

    def _label_path(self, image_id: str) -> Path:
        return self.root / "SegmentationClass" / f"{image_id}.png"

    def _check_files_exist(self) -> None:
        """Fail before evaluation starts if any listed image or label is missing (cheap stat calls)."""
        missing = [p for i in self.ids for p in (self._image_path(i), self._label_path(i)) if not p.is_file()]
        if missing:
            raise CarError(
                f"{len(missing)} file(s) listed in the {self.split} split are missing, e.g. {missing[0]}: "
                f"re-extract VOCtrainval_11-May-2012.tar (see {README})."
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
        return f"VOCSegmentation(root={str(self.root)!r}, split={self.split!r}, num_samples={len(self)})"
