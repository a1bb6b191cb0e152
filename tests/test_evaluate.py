"""End to end: the real Hydra configs and the real Lightning module on the real VOC samples."""

import json

import pytest

from car.config import compose
from car.errors import CarError
from car.evaluation import evaluate
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
    assert {"gt_present/car", "gt_present/standard"} <= set(metrics["all_rules"])


def test_missing_dataset_is_a_clear_error(tmp_path):
    cfg = compose(["backbone=micro_random", f"paths.data_root={tmp_path}", "dataset=voc"], output_dir=tmp_path)
    with pytest.raises(CarError, match="Pascal VOC 2012 not found"):
        evaluate(cfg)


def test_dataset_config_sets_paper_defaults_and_cli_wins():
    cfg = compose(["dataset=voc"])
    assert cfg.backbone.name == "vitb16_vitl14" and cfg.car.theta == 0.6 and cfg.car.eta == 0.4
    cfg = compose(["dataset=voc20", "backbone=vitb16", "car.theta=0.3"])
    assert cfg.backbone.name == "vitb16" and cfg.car.theta == 0.3 and cfg.dataset.bg_protocol == "car"
