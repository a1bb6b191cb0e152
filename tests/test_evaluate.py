"""End to end: the real Hydra configs and the real Lightning module on the real VOC samples."""

import json

import pytest

from car.config import compose
from car.errors import CarError
from car.run.evaluation import evaluate
from tests.conftest import SHARED_DATA, require_shared_data

BASE = ["backbone=micro_random", f"paths.data_root={SHARED_DATA}", "logger=csv", "num_overlays=1",
        "trainer.enable_progress_bar=false"]


@pytest.fixture(scope="module")
def voc_run(tmp_path_factory):
    require_shared_data()
    out = tmp_path_factory.mktemp("voc")
    cfg = compose(BASE + ["dataset=voc", "dataset.limit=2"], output_dir=out)
    return evaluate(cfg), out


def test_voc_metrics_json(voc_run):
    metrics, out = voc_run
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["num_images"] == 2 and saved["dataset"] == "voc" and saved["split"] == "val"
    assert 0 <= saved["miou"] <= 100 and len(saved["per_class_iou"]) == 21
    assert saved["average"] == "gt_present" and saved["published"]["miou"] == 67.6
    assert saved["config"]["car"]["theta"] == 0.6 and saved["versions"]["torch"]
    assert set(saved["all_rules"]) == {"gt_present/with_background", "union_present/with_background"}
    assert sum(map(sum, saved["confusion_matrix"])) > 0
    assert (out / "per_class_iou.md").is_file() and len(list((out / "overlays").glob("*.png"))) == 1
    assert (out / "csv" / "metrics.csv").is_file()


def test_same_seed_same_metrics(voc_run, tmp_path):
    metrics, _ = voc_run
    again = evaluate(compose(BASE + ["dataset=voc", "dataset.limit=2", "logger=none"], output_dir=tmp_path))
    assert again["confusion_matrix"] == metrics["confusion_matrix"]


def test_voc20_reports_both_protocols(tmp_path):
    require_shared_data()
    cfg = compose(BASE + ["dataset=voc20", "dataset.limit=1", "car.crf.enabled=false"], output_dir=tmp_path)
    metrics = evaluate(cfg)
    assert metrics["bg_protocol"] == "car" and metrics["published"]["miou"] == 91.4
    assert metrics["per_class_iou"].get("background") is None
    # CaR predicts background, so the row-only rule is not the peers' standard_no_bg
    assert {"gt_present/car", "gt_present/standard_bg_miss"} <= set(metrics["all_rules"])
    assert not any("standard_no_bg" in rule for rule in metrics["all_rules"])


def test_missing_dataset_is_a_clear_error(tmp_path):
    cfg = compose(["backbone=micro_random", f"paths.data_root={tmp_path}", "dataset=voc"], output_dir=tmp_path)
    with pytest.raises(CarError, match="Pascal VOC 2012 not found"):
        evaluate(cfg)


def test_dataset_config_sets_paper_defaults_and_cli_wins():
    cfg = compose(["dataset=voc"])
    assert cfg.backbone.name == "vitb16_vitl14" and cfg.car.theta == 0.6 and cfg.car.eta == 0.4
    cfg = compose(["dataset=voc20", "backbone=vitb16", "car.theta=0.3"])
    assert cfg.backbone.name == "vitb16" and cfg.car.theta == 0.3 and cfg.dataset.bg_protocol == "car"


@pytest.mark.parametrize("dataset,split,unit", [("refcoco", "val", "object"), ("refcocog", "test", "sentence")])
def test_referring_end_to_end(tmp_path, dataset, split, unit):
    require_shared_data()
    cfg = compose(BASE + [f"dataset={dataset}", f"dataset.loader.split={split}", f"dataset.loader.unit={unit}",
                          f"paths.data_root={SHARED_DATA}", "dataset.limit=1", "logger=none"], output_dir=tmp_path)
    metrics = evaluate(cfg)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["task"] == "referring" and saved["unit"] == unit and saved["num_units"] == 1
    assert saved["num_sentences"] >= 1 and 0 <= saved["miou"] <= 100 and 0 <= saved["oiou"] <= 100
    assert "precision@0.5" in saved and saved["published"]["miou"] > 30
    assert metrics["config"]["car"]["templates"] == []
    assert saved["weighting"] == "unit" and saved["config"]["dataset"]["weighting"] == "unit"
    assert ("every object counts once" if unit == "object" else "every sentence counts once") in saved["unit_note"]


def test_referring_weighting_is_recorded_and_checked(tmp_path):
    require_shared_data()
    base = BASE + ["dataset=refcoco", "dataset.limit=1", "logger=none", "num_overlays=0"]
    metrics = evaluate(compose(base + ["dataset.weighting=sentence"], output_dir=tmp_path))
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["weighting"] == "sentence" and "once per sentence" in saved["unit_note"]
    assert metrics["num_units"] == 1
    refusal = r"^dataset\.weighting='expression' is not allowed; choose one of: unit, sentence\.$"
    with pytest.raises(CarError, match=refusal):
        evaluate(compose(base + ["dataset.weighting=expression"], output_dir=tmp_path / "bad"))


def test_coco_object_end_to_end(tmp_path):
    require_shared_data()
    cfg = compose(BASE + ["dataset=coco_object", "dataset.limit=1", "logger=none"], output_dir=tmp_path)
    metrics = evaluate(cfg)
    assert metrics["num_images"] == 1 and len(metrics["per_class_iou"]) == 81
    assert metrics["published"]["miou"] == 36.6 and metrics["config"]["car"]["prompts"] == ["blur", "gray"]


def test_context_two_passes_end_to_end(tmp_path):
    """A one-image Pascal Context tree made from a real VOC image and a synthetic label."""
    import numpy as np
    from PIL import Image

    from tests.conftest import VOC_ROOT

    require_shared_data()
    root = tmp_path / "data" / "VOCdevkit" / "VOC2010"
    for sub in ("JPEGImages", "SegmentationClassContext", "ImageSets/SegmentationContext"):
        (root / sub).mkdir(parents=True)
    image = Image.open(VOC_ROOT / "JPEGImages" / "2007_000129.jpg")
    image.save(root / "JPEGImages" / "2008_000001.jpg")
    label = np.zeros((image.height, image.width), np.uint8)
    label[: image.height // 2] = 47  # sky (stuff)
    label[image.height // 2 :, : image.width // 2] = 37  # person (thing)
    Image.fromarray(label, mode="L").save(root / "SegmentationClassContext" / "2008_000001.png")
    (root / "ImageSets" / "SegmentationContext" / "val.txt").write_text("2008_000001\n")
    cfg = compose(BASE + ["dataset=context59", f"paths.data_root={tmp_path / 'data'}", "logger=none",
                          "car.crf.enabled=false"], output_dir=tmp_path / "out")
    metrics = evaluate(cfg)
    assert metrics["num_images"] == 1 and metrics["bg_protocol"] == "car"
    assert metrics["mean_steps"] >= 2
    assert metrics["published"]["miou"] == 39.5


def test_crf_worker_pool_gives_identical_metrics(voc_run, tmp_path):
    metrics, _ = voc_run
    pooled = evaluate(compose(BASE + ["dataset=voc", "dataset.limit=2", "logger=none", "crf_workers=2"],
                              output_dir=tmp_path))
    assert pooled["confusion_matrix"] == metrics["confusion_matrix"]
