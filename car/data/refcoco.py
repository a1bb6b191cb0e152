"""RefCOCO / RefCOCO+ / RefCOCOg referring segmentation (refer-toolkit ``data_root`` layout).

Expected layout under ``root`` (see datasets/refcoco/README.md)::

    <root>/refcoco/   instances.json  refs(unc).p
    <root>/refcoco+/  instances.json  refs(unc).p
    <root>/refcocog/  instances.json  refs(umd).p  refs(google).p
    <root>/images/mscoco/images/train2014/COCO_train2014_<12 digits>.jpg

Each item is a dict::

    {"image": np.uint8 [H,W,3], "target": np.int64 [H,W] (0/1),
     "image_id": "<dataset>_<split>_ref<ref_id>" (+ "_s<sent_id>" in sentence unit),
     "sentences": list[str], "sentence_ids": list[int], "ref_id": int, "category_id": int}

Evaluation unit (spec §8, Q24): ``unit="object"`` (official CaR) yields one item per referred
object with *all* its expressions (they are the query list of one CaR run); ``unit="sentence"``
(standard RIS protocol) yields one item per expression.

Which sentence field: the official CaR loader (adapted from LAVT's ``dataset_refer_bert.py``)
collects ``el['raw']`` for every sentence of a ref, and CaR's sentence processing (spec §2.5)
then lower-cases it and deletes ``"`` and ``/`` — nothing else. We do the same on ``raw``:
'blue guy w/ black headgear' -> 'blue guy w black headgear' (the toolkit's cleaned ``sent``
field would give 'blue guy with black headgear' in the sample and drops all punctuation, which
is not what the official pipeline feeds CLIP). Q25 (a bare string keeping only its first
character) is not reproduced: items carry plain strings. Empty expressions are kept, as in the
official object-unit loader.

Ground truth (spec §8, Q28): the referred annotation's polygons are rasterised with pycocotools
(``frPyObjects`` on the annotation's polygon list, exactly as refer.py ``getMask`` does, one
RLE per polygon), decoded and summed over polygons; ``gt_overlap="official"`` keeps pixels
whose sum == 1 (pixels covered by two polygons of the same object are lost — inherited LAVT
quirk), ``"union"`` keeps sum >= 1. RLE segmentations (crowd annotations, compressed or
uncompressed counts) decode to a single 0/1 mask, for which both rules agree. The sum is taken
in int64 (refer.py casts it to uint8, which would only matter for >= 256 overlapping polygons).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from car.data.common import ON_MISSING, check_listed_files, read_rgb
from car.data.safe_pickle import safe_load
from car.errors import CarError
from car.settings.enums import GT_OVERLAP, UNITS

README = "datasets/refcoco/README.md"
IMAGE_SUBDIR = Path("images") / "mscoco" / "images" / "train2014"

# (dataset, split_by) -> valid splits (spec §8 and Q26; refer-toolkit files).
VALID_SPLITS: dict[tuple[str, str], tuple[str, ...]] = {
    ("refcoco", "unc"): ("val", "testA", "testB", "train"),
    ("refcoco+", "unc"): ("val", "testA", "testB", "train"),
    ("refcocog", "umd"): ("val", "test", "train"),
    ("refcocog", "google"): ("val", "train"),
}


def valid_choices_text() -> str:
    return "; ".join(f"{d} with split_by={s}: {'/'.join(sp)}" for (d, s), sp in VALID_SPLITS.items())


def process_expression(text: str) -> str:
    """Spec §2.5: lower-case and delete the characters '"' and '/'; nothing else."""
    return text.lower().replace('"', "").replace("/", "")


def _decode_segmentation(segmentation, height: int, width: int, what: str) -> np.ndarray:
    """pycocotools decode of a polygon list ([H,W,N], one channel per polygon) or an RLE dict ([H,W])."""
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list):
        if not segmentation:
            raise CarError(f"{what} has an empty polygon list, so its ground-truth mask would be empty.")
        rles = mask_utils.frPyObjects(segmentation, height, width)  # list: one RLE per polygon
        decoded = mask_utils.decode(rles)  # uint8 [H,W,N]
    elif isinstance(segmentation, dict) and "counts" in segmentation:
        rle = segmentation
        if isinstance(rle["counts"], list):  # uncompressed RLE
            rle = mask_utils.frPyObjects(rle, height, width)
        decoded = mask_utils.decode(rle)  # uint8 [H,W]
    else:
        raise CarError(f"{what} has a segmentation that is neither a polygon list nor an RLE dict.")
    return decoded


def annotation_mask(segmentation, height: int, width: int, gt_overlap: str = "official", what: str = "annotation"):
    """Rasterise a COCO segmentation (polygon list or RLE dict) to np.int64 [H,W] 0/1.

    Polygons: one RLE per polygon, decoded and summed; foreground = sum == 1 ("official") or
    sum >= 1 ("union"). ``what`` names the annotation in error messages.
    """
    if gt_overlap not in GT_OVERLAP:
        raise CarError(f"gt_overlap must be one of {', '.join(GT_OVERLAP)}, got {gt_overlap!r}.")
    try:
        with warnings.catch_warnings():
            # pycocotools + numpy 2 emit a harmless DeprecationWarning (copy keyword) on every decode
            warnings.simplefilter("ignore", DeprecationWarning)
            decoded = _decode_segmentation(segmentation, height, width, what)
    except CarError:
        raise
    except Exception as exc:  # malformed coordinates / counts
        raise CarError(f"{what} has a malformed segmentation ({type(exc).__name__}: {exc}).") from exc
    if decoded.shape[:2] != (height, width):
        raise CarError(
            f"{what} has a {decoded.shape[0]}x{decoded.shape[1]} segmentation but its image is {height}x{width}."
        )
    total = decoded.astype(np.int64)
    if total.ndim == 3:
        total = total.sum(axis=2)  # [H,W]
    fg = (total == 1) if gt_overlap == "official" else (total >= 1)
    return fg.astype(np.int64)  # [H,W] 0/1


class RefCOCO(Dataset):
    """Referring segmentation items from a refer-toolkit data_root.

    Args:
        root: the refer ``data_root`` (holds ``<dataset>/`` and ``images/mscoco/images/train2014``).
        dataset: "refcoco", "refcoco+" or "refcocog".
        split_by: "unc" (refcoco, refcoco+), "umd" or "google" (refcocog).
        split: see ``VALID_SPLITS``.
        unit: "object" (official CaR: one item per referred object) or "sentence" (one per expression).
        gt_overlap: "official" (sum of polygons == 1) or "union" (sum >= 1).
        limit: keep only the first ``limit`` items (None = all).
        on_missing: "fail" (a needed image missing on disk stops the run, one sentence) or "skip"
            (its items raise CarError when read: counted skips under on_bad_sample=skip).
    """

    def __init__(
        self,
        root: str | Path,
        dataset: str = "refcoco",
        split_by: str = "unc",
        split: str = "val",
        unit: str = "object",
        gt_overlap: str = "official",
        limit: int | None = None,
        on_missing: str = "fail",
    ):
        self.root = Path(root).expanduser()
        self.dataset, self.split_by, self.split = dataset, split_by, split
        if (dataset, split_by) not in VALID_SPLITS or split not in VALID_SPLITS[(dataset, split_by)]:
            raise CarError(
                f"dataset={dataset!r} split_by={split_by!r} split={split!r} is not a valid referring split; "
                f"valid choices are {valid_choices_text()}."
            )
        if unit not in UNITS:
            raise CarError(f"unit must be one of {', '.join(UNITS)}, got {unit!r}.")
        if gt_overlap not in GT_OVERLAP:
            raise CarError(f"gt_overlap must be one of {', '.join(GT_OVERLAP)}, got {gt_overlap!r}.")
        if on_missing not in ON_MISSING:
            raise CarError(f"on_missing must be one of {', '.join(ON_MISSING)}, got {on_missing!r}.")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise CarError(f"limit must be a positive integer or None, got {limit!r}: fix the dataset limit setting.")
        self.unit, self.gt_overlap = unit, gt_overlap

        ds_dir = self.root / dataset
        refs_path = ds_dir / f"refs({split_by}).p"
        instances_path = ds_dir / "instances.json"
        for path in (instances_path, refs_path):
            if not path.is_file():
                raise CarError(
                    f"{path} does not exist: download and extract {dataset}.zip and the COCO train2014 images "
                    f"as described in {README}, or point the data root at the refer data_root."
                )
        self.image_dir = self.root / IMAGE_SUBDIR

        refs = safe_load(refs_path)
        images, anns = self._read_instances(instances_path)
        self.images, self.anns = images, anns
        self.items: list[dict] = self._build_items(refs, refs_path)
        if not self.items:
            raise CarError(
                f"{refs_path} has no referred objects in split {split!r}: check the split name or re-extract "
                f"{dataset}.zip (see {README})."
            )
        if limit is not None:
            self.items = self.items[:limit]
        self._check_images_exist(on_missing)

    # ------------------------------------------------------------------ index building

    @staticmethod
    def _read_instances(path: Path) -> tuple[dict, dict]:
        try:
            with open(path, "rb") as f:
                data = json.load(f)
            images = {int(im["id"]): im for im in data["images"]}
            anns = {int(a["id"]): a for a in data["annotations"]}
            for im in images.values():
                im["file_name"], im["height"], im["width"]  # noqa: B018 - presence check
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CarError(
                f"{path} is not a valid refer instances.json ({type(exc).__name__}: {exc}): "
                f"re-extract it as described in {README}."
            ) from exc
        return images, anns

    def _build_items(self, refs, refs_path: Path) -> list[dict]:
        if not isinstance(refs, list):
            raise CarError(f"{refs_path} holds a {type(refs).__name__}, not the list of refs a refs file holds.")
        items = []
        for ref in refs:
            try:
                if ref["split"] != self.split:
                    continue
                ref_id, ann_id, image_id = int(ref["ref_id"]), int(ref["ann_id"]), int(ref["image_id"])
                category_id = int(ref["category_id"])
                sents = [(int(s["sent_id"]), process_expression(str(s["raw"]))) for s in ref["sentences"]]
            except (KeyError, TypeError, ValueError) as exc:
                raise CarError(
                    f"{refs_path} has a malformed ref ({type(exc).__name__}: {exc}): re-extract it (see {README})."
                ) from exc
            if ann_id not in self.anns:
                raise CarError(f"ref {ref_id} in {refs_path} points to annotation {ann_id}, "
                               f"absent from instances.json.")
            if image_id not in self.images:
                raise CarError(f"ref {ref_id} in {refs_path} points to image {image_id}, absent from instances.json.")
            base = {"ref_id": ref_id, "ann_id": ann_id, "coco_image_id": image_id, "category_id": category_id}
            prefix = f"{self.dataset}_{self.split}_ref{ref_id}"
            if self.unit == "object":
                items.append(
                    dict(base, image_id=prefix, sentences=[s for _, s in sents], sentence_ids=[i for i, _ in sents])
                )
            else:
                for sent_id, sent in sents:
                    items.append(dict(base, image_id=f"{prefix}_s{sent_id}", sentences=[sent], sentence_ids=[sent_id]))
        return items

    def _image_path(self, coco_image_id: int) -> Path:
        return self.image_dir / self.images[coco_image_id]["file_name"]

    def _check_images_exist(self, on_missing: str = "fail") -> None:
        """Before evaluation starts: a needed image missing stops the run (fail) or its items are
        left to be skipped (skip), see `check_listed_files`."""
        needed = sorted({it["coco_image_id"] for it in self.items})
        absent = {i for i in needed if not self._image_path(i).is_file()}
        missing = [self._image_path(i) for i in sorted(absent)]
        sentence = (f"{len(missing)} image(s) of {self.dataset} {self.split} are missing, e.g. "
                    f"{missing[0] if missing else None}: extract COCO train2014.zip into {self.image_dir} "
                    f"(see {README}).")
        items_missing = sum(it["coco_image_id"] in absent for it in self.items)
        check_listed_files(missing, items_missing, len(self.items), on_missing, sentence)

    # ------------------------------------------------------------------ access

    def __len__(self) -> int:
        return len(self.items)

    def ground_truth(self, index: int) -> np.ndarray:
        """np.int64 [H,W] 0/1 mask of the referred object of item ``index``."""
        it = self.items[index]
        ann = self.anns[it["ann_id"]]
        im = self.images[it["coco_image_id"]]
        return annotation_mask(
            ann.get("segmentation"), int(im["height"]), int(im["width"]), self.gt_overlap,
            what=f"annotation {it['ann_id']} (ref {it['ref_id']} of {self.dataset})",
        )

    def __getitem__(self, index: int) -> dict:
        it = self.items[index]
        image = read_rgb(self._image_path(it["coco_image_id"]))  # uint8 [H,W,3]
        target = self.ground_truth(index)  # int64 [H,W]
        if image.shape[:2] != target.shape:
            raise CarError(
                f"Image {self._image_path(it['coco_image_id'])} is {image.shape[0]}x{image.shape[1]} but "
                f"instances.json says {target.shape[0]}x{target.shape[1]}: the image file does not belong to "
                f"this dataset, re-extract COCO train2014 (see {README})."
            )
        return {
            "image": image,
            "target": target,
            "image_id": it["image_id"],
            "sentences": list(it["sentences"]),
            "sentence_ids": list(it["sentence_ids"]),
            "ref_id": it["ref_id"],
            "category_id": it["category_id"],
        }

    def __repr__(self) -> str:
        return (
            f"RefCOCO(root={str(self.root)!r}, dataset={self.dataset!r}, split_by={self.split_by!r}, "
            f"split={self.split!r}, unit={self.unit!r}, num_items={len(self)})"
        )
