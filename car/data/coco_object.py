"""COCO-Object: COCO val2017 with the 80 thing classes (GroupViT conversion of COCO-Stuff-164k).

Expected layout under ``root`` (mmseg/GroupViT "coco_stuff164k" folder, as CaR's data/coco.py reads it)::

    images/val2017/<12-digit id>.jpg
    annotations/val2017/<id>_instanceTrainIds.png   'L' mode: 0 = background, 1..80 = thing classes
                                                    in COCO category order, 255 = ignore (if present)

The image ids are the sorted file stems of ``images/<split>`` (CaR lists the directory unsorted;
sorting is quirk Q33 and does not change the metric). ``datasets/coco_object/prepare.py`` writes the
``*_instanceTrainIds.png`` files from the COCO-Stuff label maps and checks the 5,000-image count.
"""

from __future__ import annotations

from pathlib import Path

from car.data.common import ListedImages, check_listed_files
from car.errors import CarError

README = "datasets/coco_object/README.md"
LABEL_SUFFIX = "_instanceTrainIds.png"


class COCOObject(ListedImages):
    """COCO-Object samples as {"image", "target", "image_id"} dicts.

    Args:
        root: the ``coco_stuff164k`` folder (contains ``images/`` and ``annotations/``).
        split: image folder name under ``images/`` and ``annotations/`` ("val2017").
        num_classes: number of label classes including background (81).
        limit: keep only the first ``limit`` sorted ids (None = all).
        on_missing: "fail" (an image without its label stops the run, one sentence) or "skip" (its
            sample raises CarError when read: a counted skip under on_bad_sample=skip).
    """

    ignore_index = 255

    def __init__(self, root: str | Path, split: str = "val2017", num_classes: int = 81, limit: int | None = None,
                 on_missing: str = "fail"):
        self.root = Path(root).expanduser()
        self.split = split
        self.num_classes = num_classes
        self.image_dir = self.root / "images" / split
        self.label_dir = self.root / "annotations" / split
        if not self.image_dir.is_dir():
            raise CarError(
                f"COCO-Object images not found: {self.image_dir} does not exist; download val2017.zip and "
                f"prepare the tree as described in {README}, or set the dataset root to the folder that "
                f"contains images/{split}."
            )
        if not self.label_dir.is_dir():
            raise CarError(
                f"COCO-Object labels not found: {self.label_dir} does not exist; download "
                f"stuffthingmaps_trainval2017.zip and run datasets/coco_object/prepare.py (see {README})."
            )
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise CarError(f"limit must be a positive integer or None, got {limit!r}: fix the dataset limit setting.")

        ids = sorted(p.stem for p in self.image_dir.iterdir() if p.suffix == ".jpg" and p.is_file())
        if not ids:
            raise CarError(f"COCO-Object image folder {self.image_dir} holds no .jpg files: re-extract val2017.zip "
                           f"(see {README}).")
        self.ids: list[str] = ids[:limit] if limit is not None else ids
        self._check_labels_exist(on_missing)

    def _image_path(self, image_id: str) -> Path:
        return self.image_dir / f"{image_id}.jpg"

    def _label_path(self, image_id: str) -> Path:
        return self.label_dir / f"{image_id}{LABEL_SUFFIX}"

    def _check_labels_exist(self, on_missing: str = "fail") -> None:
        """Before evaluation starts: an image without its converted label stops the run (fail) or
        is left to be skipped (skip), see `check_listed_files`."""
        missing = [self._label_path(i) for i in self.ids if not self._label_path(i).is_file()]
        sentence = (f"{len(missing)} of {len(self.ids)} COCO-Object label file(s) are missing, e.g. "
                    f"{missing[0] if missing else None}: run datasets/coco_object/prepare.py to convert the "
                    f"COCO-Stuff maps (see {README}).")
        check_listed_files(missing, len(missing), len(self.ids), on_missing, sentence)
