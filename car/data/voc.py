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

class VOCSegmentation(Dataset):
    """Pascal VOC 2012 segmentation samples as {"image", "target", "image_id"} dicts.

    Args:
        root: the ``VOCdevkit/VOC2012`` folder.
        split: name of a file in ``ImageSets/Segmentation`` (e.g. "val", "train", "trainval").
        num_classes: number of label classes including background (21 for VOC).
        limit: keep only the first ``limit`` ids of the split (None = all).

    Datasets in the same VOC folder layout (Pascal Context) subclass this and change the class
    attributes below: folder names and the sentences that say how to fix a missing piece.
    """

    ignore_index = 255
    label_dir = "SegmentationClass"
    split_dir = "Segmentation"
    readme = "datasets/voc/README.md"
    not_found = ("Pascal VOC 2012 not found at {root}: download VOCtrainval_11-May-2012.tar and extract it so that "
                 "{root}/JPEGImages exists (see {readme}), or set paths.data_root=<dir containing VOCdevkit>.")
    no_labels = ("Pascal VOC 2012 at {root} has no SegmentationClass folder: extract the full "
                 "VOCtrainval_11-May-2012.tar there (see {readme}).")
    files_missing = ("{n} file(s) listed in the {split} split are missing, e.g. {first}: "
                     "re-extract VOCtrainval_11-May-2012.tar (see {readme}).")

    def __init__(self, root: str | Path, split: str = "val", num_classes: int = 21, limit: int | None = None):
        self.root = Path(root).expanduser()
        self.split = split
        self.num_classes = num_classes
        if not (self.root / "JPEGImages").is_dir():
            raise CarError(self.not_found.format(root=self.root, readme=self.readme))
        if not (self.root / self.label_dir).is_dir():
            raise CarError(self.no_labels.format(root=self.root, readme=self.readme))
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise CarError(f"limit must be a positive integer or None, got {limit!r}: fix the dataset limit setting.")

        ids = read_split_file(self.root / "ImageSets" / self.split_dir / f"{split}.txt", readme=self.readme)
        self.ids: list[str] = ids[:limit] if limit is not None else ids
        self._check_files_exist()

    def _image_path(self, image_id: str) -> Path:
        return self.root / "JPEGImages" / f"{image_id}.jpg"

    def _label_path(self, image_id: str) -> Path:
        return self.root / self.label_dir / f"{image_id}.png"

    def _check_files_exist(self) -> None:
        """Fail before evaluation starts if any listed image or label is missing (cheap stat calls)."""
        missing = [p for i in self.ids for p in (self._image_path(i), self._label_path(i)) if not p.is_file()]
        if missing:
            raise CarError(self.files_missing.format(n=len(missing), split=self.split, first=missing[0],
                                                     readme=self.readme))

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict:
        image_id = self.ids[index]
        image = read_rgb(self._image_path(image_id))  # uint8 [H,W,3]
        target = read_label(self._label_path(image_id), self.num_classes, self.ignore_index)  # int64 [H,W]
        check_same_size(image, target, image_id)
        return {"image": image, "target": target, "image_id": image_id}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, num_samples={len(self)})"
