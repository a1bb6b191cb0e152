"""RefCOCO/RefCOCO+/RefCOCOg loader: counts per split and unit, item format, GT masks, bad input.

Runs on the real-format sample in ../shared/data/refcoco (synthetic expressions, real COCO images
and polygons; see its README). Tests that need it are skipped when it is absent. The sample is
read-only: modified trees are built under tmp_path.
"""

from __future__ import annotations

import io
import json
import pickle
import shutil

import numpy as np
import pytest

from car.data.refcoco import RefCOCO, annotation_mask, process_expression
from car.errors import CarError
from tests.refcoco_helpers import SAMPLE, needs_sample, tmp_root

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools")  # numpy-2 copy= notice

# ------------------------------------------------------------------------------- counts / units

# (dataset, split_by, split) -> (objects, sentences), from the sample README table + make_refs.py
SAMPLE_COUNTS = {
    ("refcoco", "unc", "val"): (5, 10),
    ("refcoco", "unc", "testA"): (4, 9),
    ("refcoco", "unc", "testB"): (4, 8),
    ("refcoco+", "unc", "val"): (5, 9),
    ("refcoco+", "unc", "testA"): (4, 7),
    ("refcoco+", "unc", "testB"): (4, 8),
    ("refcocog", "umd", "val"): (5, 5),
    ("refcocog", "umd", "test"): (8, 8),
}


@needs_sample
@pytest.mark.parametrize("key", sorted(SAMPLE_COUNTS))
def test_counts_per_split_and_unit(key):
    dataset, split_by, split = key
    objects, sentences = SAMPLE_COUNTS[key]
    by_object = RefCOCO(SAMPLE, dataset, split_by, split, unit="object")
    by_sentence = RefCOCO(SAMPLE, dataset, split_by, split, unit="sentence")
    assert len(by_object) == objects
    assert len(by_sentence) == sentences
    assert sum(len(it["sentences"]) for it in by_object.items) == sentences
    # sentence unit = the object unit's sentences, one per item, same order
    flat = [(it["ref_id"], s, i) for it in by_object.items for s, i in zip(it["sentences"], it["sentence_ids"])]
    assert [(it["ref_id"], it["sentences"][0], it["sentence_ids"][0]) for it in by_sentence.items] == flat


@needs_sample
def test_totals_per_dataset():
    totals = {}
    for (dataset, _, _), (o, s) in SAMPLE_COUNTS.items():
        a, b = totals.get(dataset, (0, 0))
        totals[dataset] = (a + o, b + s)
    assert totals == {"refcoco": (13, 27), "refcoco+": (13, 24), "refcocog": (13, 13)}


@needs_sample
def test_item_format_object_unit():
    ds = RefCOCO(SAMPLE, "refcoco", "unc", "testA")
    item = ds[3]
    assert set(item) == {"image", "target", "image_id", "sentences", "sentence_ids", "ref_id", "category_id"}
    assert item["image"].dtype == np.uint8 and item["image"].ndim == 3 and item["image"].shape[2] == 3
    assert item["target"].dtype == np.int64 and item["target"].shape == item["image"].shape[:2]
    assert item["image_id"] == "refcoco_testA_ref3"
    assert item["sentences"] == ["blue guy w black headgear", "player wearing scrum cap"]
    assert item["sentence_ids"] == [7, 8]
    assert item["ref_id"] == 3 and item["category_id"] == 1


@needs_sample
def test_item_format_sentence_unit_and_limit():
    ds = RefCOCO(SAMPLE, "refcoco", "unc", "testA", unit="sentence", limit=2)
    assert len(ds) == 2
    item = ds[1]
    assert item["image_id"] == "refcoco_testA_ref0_s1"
    assert item["sentences"] == ["right player being lifted"] and item["sentence_ids"] == [1]


@needs_sample
def test_sentences_come_from_raw_lowercased_without_quote_and_slash():
    ds = RefCOCO(SAMPLE, "refcoco", "unc", "testA")
    sents = [s for it in ds.items for s in it["sentences"]]
    assert "left guy in the air" in sents  # raw 'LEFT GUY IN THE AIR'
    assert "guy in white #4 up in the air on right" in sents  # '#' kept: only '"' and '/' are deleted
    assert "blue guy w black headgear" in sents  # raw 'blue guy w/ black headgear' (sent: '... with ...')
    g = RefCOCO(SAMPLE, "refcocog", "umd", "test")
    assert g.items[0]["sentences"][0].endswith("by his teammates.")  # punctuation of raw kept


def test_process_expression():
    assert process_expression('The "Big" Dog/Cat') == "the big dogcat"
    assert process_expression("a") == "a"  # a plain string is kept whole (no Q25 first-character bug)
    assert process_expression("") == ""


# ----------------------------------------------------------------------------------- GT masks


@needs_sample
def test_gt_binary_nonempty_and_matches_annToMask():
    import contextlib

    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(SAMPLE / "refcoco" / "instances.json"))
    for split in ("val", "testA", "testB"):
        ds = RefCOCO(SAMPLE, "refcoco", "unc", split)
        for i, it in enumerate(ds.items):
            target = ds.ground_truth(i)
            assert set(np.unique(target)) == {0, 1}
            ann = coco.anns[it["ann_id"]]
            if len(ann["segmentation"]) == 1:  # single polygon: both rules agree with annToMask
                np.testing.assert_array_equal(target, coco.annToMask(ann).astype(np.int64))
    item = RefCOCO(SAMPLE, "refcoco", "unc", "val")[0]
    assert item["target"].sum() > 0


def _square(x0, y0, x1, y1):
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def test_overlap_rule_official_vs_union_on_crafted_polygons():
    seg = [_square(2, 2, 12, 12), _square(7, 7, 17, 17)]  # two overlapping squares of one object
    official = annotation_mask(seg, 20, 20, "official")
    union = annotation_mask(seg, 20, 20, "union")
    assert official.dtype == np.int64 and set(np.unique(official)) <= {0, 1}
    assert union.sum() > official.sum() > 0
    overlap = union - official
    assert overlap.sum() > 0 and overlap[9, 9] == 1 and official[9, 9] == 0 and official[3, 3] == 1
    single = annotation_mask([_square(2, 2, 12, 12)], 20, 20, "official")
    np.testing.assert_array_equal(single, annotation_mask([_square(2, 2, 12, 12)], 20, 20, "union"))


def test_rle_segmentations():
    from pycocotools import mask as mask_utils

    m = np.zeros((10, 12), dtype=np.uint8)
    m[2:5, 3:9] = 1
    compressed = mask_utils.encode(np.asfortranarray(m))
    compressed = {"size": compressed["size"], "counts": compressed["counts"].decode()}
    for gt in ("official", "union"):
        np.testing.assert_array_equal(annotation_mask(compressed, 10, 12, gt), m.astype(np.int64))
    # uncompressed RLE (iscrowd style): column-major run lengths starting with zeros
    flat = m.flatten(order="F")
    runs, cur, n = [], 0, 0
    for v in flat:
        if v != cur:
            runs.append(n)
            cur, n = v, 0
        n += 1
    runs.append(n)
    np.testing.assert_array_equal(annotation_mask({"size": [10, 12], "counts": runs}, 10, 12), m.astype(np.int64))
    with pytest.raises(CarError):
        annotation_mask({"size": [5, 5], "counts": "0"}, 10, 12)  # wrong size
    with pytest.raises(CarError):
        annotation_mask([], 10, 12)
    with pytest.raises(CarError):
        annotation_mask("nonsense", 10, 12)


@needs_sample
def test_gt_overlap_flag_through_loader(tmp_path):
    root = tmp_root(tmp_path)
    inst_path = root / "refcoco" / "instances.json"
    inst = json.loads(inst_path.read_text())
    ds = RefCOCO(SAMPLE, "refcoco", "unc", "val")
    ann_id = ds.items[0]["ann_id"]
    for a in inst["annotations"]:
        if a["id"] == ann_id:
            a["segmentation"] = [_square(100, 100, 200, 200), _square(150, 150, 250, 250)]
    inst_path.write_text(json.dumps(inst))
    official = RefCOCO(root, "refcoco", "unc", "val", gt_overlap="official")[0]["target"]
    union = RefCOCO(root, "refcoco", "unc", "val", gt_overlap="union")[0]["target"]
    assert union.sum() - official.sum() > 2000  # the ~50x50 overlap is lost under the official rule
    assert official[175, 175] == 0 and union[175, 175] == 1


# ------------------------------------------------------------------------------ invalid / missing


@pytest.mark.parametrize(
    "dataset,split_by,split",
    [("refcocog", "unc", "val"), ("refcoco", "umd", "val"), ("refcoco", "unc", "test"),
     ("refcocog", "google", "test"), ("refcoco+", "google", "val"), ("refclef", "unc", "val")],
)
def test_invalid_combinations(tmp_path, dataset, split_by, split):
    with pytest.raises(CarError, match="valid choices are .*refcocog with split_by=umd: val/test/train"):
        RefCOCO(tmp_path, dataset, split_by, split)


def test_invalid_unit_overlap_limit(tmp_path):
    with pytest.raises(CarError, match="unit"):
        RefCOCO(tmp_path, unit="image")
    with pytest.raises(CarError, match="gt_overlap"):
        RefCOCO(tmp_path, gt_overlap="max")
    with pytest.raises(CarError, match="limit"):
        RefCOCO(tmp_path, limit=0)


def test_missing_files(tmp_path):
    with pytest.raises(CarError, match=r"instances\.json does not exist.*datasets/refcoco/README\.md"):
        RefCOCO(tmp_path, "refcoco", "unc", "val")
    (tmp_path / "refcocog").mkdir()
    (tmp_path / "refcocog" / "instances.json").write_text("{}")
    with pytest.raises(CarError, match=r"refs\(google\)\.p does not exist.*datasets/refcoco/README\.md"):
        RefCOCO(tmp_path, "refcocog", "google", "val")


@needs_sample
def test_missing_image_and_empty_split(tmp_path):
    root = tmp_path / "root"
    shutil.copytree(SAMPLE / "refcoco", root / "refcoco")
    with pytest.raises(CarError, match=r"missing, e\.g\. .*COCO_train2014_.*train2014\.zip"):
        RefCOCO(root, "refcoco", "unc", "val")
    (root / "images").symlink_to(SAMPLE / "images", target_is_directory=True)
    with pytest.raises(CarError, match="no referred objects in split 'train'"):
        RefCOCO(root, "refcoco", "unc", "train")


@needs_sample
def test_refs_not_a_list(tmp_path):
    root = tmp_root(tmp_path)
    with open(root / "refcoco" / "refs(unc).p", "wb") as f:
        pickle.dump({"not": "a list"}, f, protocol=2)
    with pytest.raises(CarError, match="not the list of refs"):
        RefCOCO(root, "refcoco", "unc", "val")


