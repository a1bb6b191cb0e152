"""Pascal VOC 2012 semantic segmentation (class names come from the configs, not from here).

Expected layout under ``root`` (the ``VOCdevkit/VOC2012`` folder)::

    JPEGImages/<id>.jpg
    SegmentationClass/<id>.png            palette PNG: 0 = background, 1..20 = classes, 255 = ignore
    ImageSets/Segmentation/{train,val,trainval}.txt
"""

from __future__ import annotations

from pathlib import Path

from car.data.common import ListedImages, check_listed_files, read_split_file
from car.errors import CarError


class VOCSegmentation(ListedImages):
    """Pascal VOC 2012 segmentation samples as {"image", "target", "image_id"} dicts.

    Args:
        root: the ``VOCdevkit/VOC2012`` folder.
        split: name of a file in ``ImageSets/Segmentation`` (e.g. "val", "train", "trainval").
        num_classes: number of label classes including background (21 for VOC).
        limit: keep only the first ``limit`` ids of the split (None = all).
        on_missing: "fail" (a listed file missing on disk stops the run, one sentence) or "skip"
            (its sample raises CarError when read: a counted skip under on_bad_sample=skip).

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

    def __init__(self, root: str | Path, split: str = "val", num_classes: int = 21, limit: int | None = None,
                 on_missing: str = "fail"):
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
        self._check_files_exist(on_missing)

    def _image_path(self, image_id: str) -> Path:
        return self.root / "JPEGImages" / f"{image_id}.jpg"

    def _label_path(self, image_id: str) -> Path:
        return self.root / self.label_dir / f"{image_id}.png"

    def _check_files_exist(self, on_missing: str = "fail") -> None:
        """Before evaluation starts: a listed image or label missing stops the run (fail) or is left
        to be skipped (skip), see `check_listed_files`."""
        missing = {i: [p for p in (self._image_path(i), self._label_path(i)) if not p.is_file()] for i in self.ids}
        missing = {i: paths for i, paths in missing.items() if paths}
        files = [p for paths in missing.values() for p in paths]
        sentence = self.files_missing.format(n=len(files), split=self.split, first=files[0] if files else None,
                                             readme=self.readme)
        check_listed_files(files, len(missing), len(self.ids), on_missing, sentence)
