"""When a run may be set against the paper's number (car/reporting/comparability.py) and how the summary says so."""

import pytest
import yaml

from car.config import compose
from car.reporting.comparability import comparability, dataset_files
from car.reporting.results import published_row, run_notes
from car.reporting.tables import comparison_table, delta_cell
from car.reporting.task_views import view_of


def verdict(overrides, skipped=0):
    cfg = compose(overrides)
    return comparability(cfg, published_row(cfg), skipped=skipped)


@pytest.mark.parametrize("overrides", [
    ["dataset=voc"], ["dataset=voc20"], ["dataset=context59"], ["dataset=coco_object"], ["dataset=refcoco"],
    ["dataset=refcocog", "dataset.loader.split=test"], ["paper_row=voc21_sam"],
    ["dataset=voc", "car.chunk_size=4", "car.classifier_batch_size=8", "car.precision=bf16"],  # memory/speed only
    ["dataset=voc", "backbone.proposal.pretrained=/models/ViT-B-16.pt"],  # the paper's weights as a local file
    ["method=sclip", "dataset=voc", "backbone=vitb16", "dataset.average=union_present"],
])
def test_the_papers_setting_is_comparable(overrides):
    assert verdict(overrides) == {"comparable": True, "reason": None}


@pytest.mark.parametrize("overrides,skipped,reason", [
    (["dataset=voc", "backbone=micro_random"], 0,
     "random weights (backbone.proposal.pretrained=null, backbone.classifier.pretrained=null)"),
    (["dataset=voc", "backbone=tiny"], 0, "the demo CLIP car-tiny-vit (backbone.proposal and backbone.classifier)"),
    (["dataset=voc", "dataset.limit=5"], 0, "a subset of the images (dataset.limit=5)"),
    (["dataset=voc", "on_bad_sample=skip"], 3, "3 samples skipped (on_bad_sample=skip)"),
    (["dataset=voc", "backbone=vitb16"], 0, "backbone ViT-B-16 + ViT-B-16, the paper's is ViT-B-16 + ViT-L-14"),
    (["dataset=refcoco", "backbone=vitb16_vitl14"], 0, "the paper's is ViT-B-16 + ViT-B-16 (vitb16)"),
    (["dataset=voc", "car.theta=0.3"], 0, "settings differ from the paper's: car.theta=0.3 (paper 0.6)"),
    (["dataset=coco_object", "car.eta=0.4", "car.lambda=0.6"], 0,
     "car.eta=0.4 (paper 0.5), car.lambda=0.6 (paper 0.5)"),
    (["dataset=voc", "car.prompts=[circle]"], 0, "car.prompts=[circle] (paper [circle, blur])"),
    (["dataset=voc", "car.crf.enabled=false"], 0, "car.crf.enabled=false (paper true)"),
    (["dataset=voc", "car=clean"], 0, "more"),
    (["dataset=voc20", "dataset.bg_protocol=standard"], 0, "dataset.bg_protocol=standard (paper car)"),
    (["dataset=refcoco", "dataset.loader.unit=sentence"], 0, "dataset.loader.unit=sentence (paper object)"),
    (["method=sclip", "dataset=voc", "backbone=vitb16"], 0, "dataset.average=gt_present (paper union_present)"),
    (["dataset=shapes"], 0, "no published number for shapes"),
])
def test_a_different_setting_is_not_comparable(overrides, skipped, reason):
    result = verdict(overrides, skipped)
    assert result["comparable"] is False and reason in result["reason"], result


def test_every_reason_is_listed():
    reason = verdict(["dataset=voc", "backbone=micro_random", "dataset.limit=2", "car.theta=0.5"], skipped=1)["reason"]
    parts = reason.split("; ")
    assert [p.split(" ")[0] for p in parts] == ["random", "a", "1", "backbone", "settings"], parts


def test_dataset_files_map_names_to_configs():
    files = dataset_files()
    assert files["refcoco+"] == "refcoco_plus" and files["voc20"] == "voc20" and files["voc"] == "voc"


def test_published_backbones_are_the_dataset_defaults():
    """The paper's backbone comes from the published row where it names one, else the dataset config:
    both sources must agree for CaR's rows."""
    from car.config import RESULTS_DIR

    rows = yaml.safe_load((RESULTS_DIR / "published.yaml").read_text())["car"]["semantic"]
    for key, row in rows.items():
        dataset = dataset_files()[{"voc21": "voc"}.get(key, key)]
        assert compose([f"dataset={dataset}"]).backbone.name == row["backbone"], key


def metrics_for(comparison, miou=60.0, paper=67.6, **extra):
    return {"dataset": "voc", "task": "semantic", "average": "gt_present", "bg_protocol": None,
            "backbone": {"name": "vitb16_vitl14"}, "num_images": 1449, "miou": miou,
            "published": None if paper is None else {"miou": paper}, "comparison": comparison, **extra}


def test_delta_only_when_comparable():
    assert delta_cell(metrics_for({"comparable": True, "reason": None})) == "-7.60"
    cell = delta_cell(metrics_for({"comparable": False, "reason": "a subset of the images (dataset.limit=2)"}))
    assert cell == "not comparable (a subset of the images (dataset.limit=2))"
    assert delta_cell(metrics_for({"comparable": False, "reason": "no published number for voc"}, paper=None)) == "—"
    metrics = metrics_for({"comparable": False, "reason": "random weights"})
    table = view_of(metrics).console(metrics)  # the semantic view's console: this table (no per-class IoU)
    assert table == comparison_table(metrics, "gt_present")
    assert "| 67.6 | not comparable (random weights) |" in table and "-7.60" not in table


def test_run_notes():
    assert run_notes(metrics_for(None, resumed_images=0, skipped={"count": 0})) == []
    notes = run_notes(metrics_for(None, resumed_images=5, predictions={"dir": "/r/predictions/k"},
                                  skipped={"count": 1}))
    assert notes == ["resumed 5 images from /r/predictions/k", "skipped 1 sample (listed in metrics.json)"]
