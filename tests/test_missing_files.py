"""Files a split lists but the disk lacks (issue #18): under on_bad_sample=skip a counted, listed
skip; under fail one sentence naming the count, the first file and the fix. Fixtures are written
into tmp_path (VOC, Pascal Context, COCO-Object and refer layouts), so no real data is needed."""

import json
import pickle

import numpy as np
import pytest
from PIL import Image

from car.config import compose
from car.data.coco_object import COCOObject
from car.data.context import PascalContext
from car.data.guard import GuardedDataset
from car.data.refcoco import RefCOCO
from car.data.voc import VOCSegmentation
from car.errors import CarError
from car.run.evaluation import evaluate

IDS = ["2007_000001", "2007_000002", "2007_000003"]


def _write_pair(image_path, label_path, seed: int, size=(48, 64)):
    rng = np.random.default_rng(seed)
    image_path.parent.mkdir(parents=True, exist_ok=True)
    label_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(image_path)  # [H, W, 3]
    label = np.zeros(size, dtype=np.uint8)  # [H, W]: background, one object of class 15, an ignore border
    label[10:30, 20:40] = 15
    label[0] = 255
    Image.fromarray(label, mode="L").save(label_path)


def voc_tree(root, label_dir="SegmentationClass", split_dir="Segmentation"):
    """Three listed ids: the second has no image, the third no label."""
    for n, i in enumerate(IDS):
        _write_pair(root / "JPEGImages" / f"{i}.jpg", root / label_dir / f"{i}.png", n)
    (root / "JPEGImages" / f"{IDS[1]}.jpg").unlink()
    (root / label_dir / f"{IDS[2]}.png").unlink()
    (root / "ImageSets" / split_dir).mkdir(parents=True)
    (root / "ImageSets" / split_dir / "val.txt").write_text("\n".join(IDS) + "\n")
    return root


def _one_sentence(message: str) -> bool:
    return "\n" not in message and message.endswith(".") and "Traceback" not in message


def test_voc_missing_listed_files_fail_is_one_sentence(tmp_path):
    root = voc_tree(tmp_path / "VOC2012")
    with pytest.raises(CarError) as info:
        VOCSegmentation(root)
    message = str(info.value)
    assert message.startswith("2 file(s) listed in the val split are missing, e.g. ") and f"{IDS[1]}.jpg" in message
    assert _one_sentence(message) and "datasets/voc/README.md" in message


def test_voc_missing_listed_files_skip_are_counted_and_listed(tmp_path):
    root = voc_tree(tmp_path / "VOC2012")
    dataset = GuardedDataset(VOCSegmentation(root, on_missing="skip"), "skip")
    samples = [dataset[i] for i in range(len(dataset))]
    assert len(samples) == 3 and samples[0]["image_id"] == IDS[0] and samples[0]["target"].shape == (48, 64)
    assert [s.get("skipped", False) for s in samples] == [False, True, True]
    assert f"JPEGImages/{IDS[1]}.jpg does not exist" in samples[1]["error"]
    assert f"SegmentationClass/{IDS[2]}.png does not exist" in samples[2]["error"]


def test_skip_with_every_listed_sample_missing_still_stops(tmp_path):
    root = voc_tree(tmp_path / "VOC2012")
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text(f"{IDS[1]}\n{IDS[2]}\n")
    with pytest.raises(CarError, match=r"^2 file\(s\) listed in the val split are missing"):
        VOCSegmentation(root, on_missing="skip")


def test_unknown_on_missing_is_refused(tmp_path):
    root = voc_tree(tmp_path / "VOC2012")
    with pytest.raises(CarError, match="on_missing must be one of fail, skip"):
        VOCSegmentation(root, on_missing="ignore")


def test_context_inherits_the_skip(tmp_path):
    root = voc_tree(tmp_path / "VOC2010", "SegmentationClassContext", "SegmentationContext")
    with pytest.raises(CarError, match=r"^2 file\(s\) listed in the Pascal Context val split are missing"):
        PascalContext(root)
    dataset = GuardedDataset(PascalContext(root, on_missing="skip"), "skip")
    assert [bool(dataset[i].get("skipped")) for i in range(3)] == [False, True, True]


def test_evaluate_skips_missing_listed_files_and_fails_with_one_sentence(tmp_path):
    voc_tree(tmp_path / "data" / "VOCdevkit" / "VOC2012")
    base = ["backbone=micro_random", "dataset=voc", f"paths.data_root={tmp_path / 'data'}", "logger=none",
            "car.crf.enabled=false", "num_overlays=0", "trainer.enable_progress_bar=false"]
    metrics = evaluate(compose(base + ["on_bad_sample=skip"], output_dir=tmp_path / "skip"))
    assert metrics["num_images"] == 1 and metrics["skipped"]["count"] == 2
    errors = [s["error"] for s in metrics["skipped"]["samples"]]
    assert f"{IDS[1]}.jpg does not exist" in errors[0] and f"{IDS[2]}.png does not exist" in errors[1]
    with pytest.raises(CarError, match=r"^2 file\(s\) listed in the val split are missing") as info:
        evaluate(compose(base, output_dir=tmp_path / "fail"))
    assert _one_sentence(str(info.value))


def test_coco_object_missing_label_skip_and_fail(tmp_path):
    root = tmp_path / "coco"
    for n, i in enumerate(["000000000001", "000000000002"]):
        _write_pair(root / "images" / "val2017" / f"{i}.jpg",
                    root / "annotations" / "val2017" / f"{i}_instanceTrainIds.png", n)
    (root / "annotations" / "val2017" / "000000000002_instanceTrainIds.png").unlink()
    with pytest.raises(CarError, match=r"^1 of 2 COCO-Object label file\(s\) are missing") as info:
        COCOObject(root)
    assert _one_sentence(str(info.value))
    dataset = GuardedDataset(COCOObject(root, on_missing="skip"), "skip")
    assert not dataset[0].get("skipped") and dataset[1]["skipped"]
    assert "000000000002_instanceTrainIds.png does not exist" in dataset[1]["error"]


def refer_tree(root):
    """A two-object refer data_root whose second image is missing."""
    images = [{"id": i, "file_name": f"COCO_train2014_{i:012d}.jpg", "height": 48, "width": 64} for i in (1, 2)]
    polygon = [[10.0, 10.0, 40.0, 10.0, 40.0, 30.0, 10.0, 30.0]]
    anns = [{"id": 10 + i, "image_id": i, "category_id": 1, "segmentation": polygon} for i in (1, 2)]
    refs = [{"ref_id": i, "ann_id": 10 + i, "image_id": i, "category_id": 1, "split": "val",
             "sentences": [{"sent_id": 100 + i, "raw": f"the box {i}"}]} for i in (1, 2)]
    (root / "refcoco").mkdir(parents=True)
    (root / "refcoco" / "instances.json").write_text(json.dumps({"images": images, "annotations": anns}))
    (root / "refcoco" / "refs(unc).p").write_bytes(pickle.dumps(refs))
    image_dir = root / "images" / "mscoco" / "images" / "train2014"
    image_dir.mkdir(parents=True)
    Image.fromarray(np.zeros((48, 64, 3), dtype=np.uint8)).save(image_dir / images[0]["file_name"])
    return root


def test_refcoco_missing_image_skip_and_fail(tmp_path):
    root = refer_tree(tmp_path / "refer")
    with pytest.raises(CarError, match=r"^1 image\(s\) of refcoco val are missing, e\.g\. .*000000000002\.jpg"):
        RefCOCO(root)
    dataset = GuardedDataset(RefCOCO(root, on_missing="skip"), "skip")
    assert dataset[0]["target"].sum() > 0 and dataset[1]["skipped"]
    assert "COCO_train2014_000000000002.jpg does not exist" in dataset[1]["error"]
