"""The metric contract and the metrics.json schema (car/metrics/schema.py, car/reporting/task_views.py).

Every metric's compute() returns exactly its task's typed scores; a record is read by version
(unversioned files are version 1) and task, and each task kind has the view the reports dispatch on.
"""

from __future__ import annotations

import json

import pytest
import torch

from car.errors import CarError
from car.metrics import ReferringIoU, SemanticIoU
from car.metrics.schema import SCHEMA_VERSION, TASKS, check_record, missing_scores
from car.metrics.video import VideoMeasures
from car.reporting.report_html import write_report
from car.reporting.task_views import VIEWS, view_of

pytestmark = pytest.mark.filterwarnings("ignore:The ``compute`` method:UserWarning")  # empty metrics on purpose


def semantic_metric() -> SemanticIoU:
    metric = SemanticIoU(3, average="gt_present", bg_protocol="car", class_names=["bg", "a", "b"],
                         predicts_background=True)
    metric.update(torch.tensor([[0, 1, 2, 2], [1, 0, 2, 0]]), torch.tensor([[0, 1, 1, 2], [1, 1, 2, 255]]))
    return metric


def referring_metric() -> ReferringIoU:
    metric = ReferringIoU("sentence", unit="object")
    metric.update(torch.tensor([[1, 1], [0, 0]]), torch.tensor([[1, 0], [0, 0]]), sentences=2)  # IoU 50
    metric.update(torch.tensor([[0, 0], [1, 1]]), torch.tensor([[0, 0], [1, 1]]), sentences=1)  # IoU 100
    return metric


def video_metric() -> VideoMeasures:
    metric = VideoMeasures()
    target = torch.zeros(3, 8, 8, dtype=torch.uint8)  # [T, H, W]: object 1 in the top half
    target[:, :4] = 1
    metric.update(target.clone(), target, sequence="v", expression_set="0")
    return metric


@pytest.mark.parametrize("make", [semantic_metric, referring_metric, video_metric])
def test_compute_returns_exactly_the_tasks_scores(make):
    metric = make()
    scores = metric.compute()
    assert metric.task in TASKS
    assert missing_scores(metric.task, scores) == []
    assert set(scores) == TASKS[metric.task].score_keys  # nothing undeclared either
    json.dumps(scores)  # plain JSON values, no tensors


def test_semantic_scores_name_the_protocols_and_keep_the_matrix():
    scores = semantic_metric().compute()
    assert scores["bg_protocol"] == "car" and scores["average"] == "gt_present"
    assert set(scores["all_rules"]) == {"gt_present/car", "gt_present/standard_bg_miss", "union_present/car",
                                       "union_present/standard_bg_miss"}
    assert scores["all_rules"]["gt_present/car"] == scores["miou"]
    assert scores["confusion_matrix"] == [[1, 0, 0], [1, 2, 1], [0, 0, 2]]  # (gt, pred) pairs counted by hand
    peer = SemanticIoU(3, bg_protocol="standard", predicts_background=False).compute()
    assert peer["bg_protocol"] == "standard_no_bg"


def test_referring_scores_carry_unit_weighting_and_every_units_iou():
    scores = referring_metric().compute()
    assert scores["unit_ious"] == [50.0, 100.0]  # in the order scored
    assert scores["miou"] == pytest.approx((2 * 50 + 100) / 3)  # weighting=sentence
    assert scores["unit"] == "object" and scores["weighting"] == "sentence"
    assert scores["unit_note"].endswith("its mask counts once per sentence of the object (weighting=sentence)")
    assert ReferringIoU().compute()["unit_ious"] == []
    with pytest.raises(ValueError, match="unit must be one of"):
        ReferringIoU(unit="image")


def test_every_task_kind_has_a_report_view():
    assert set(VIEWS) == set(TASKS)


def test_unversioned_records_read_as_version_1_and_newer_ones_are_refused():
    old = {"task": "referring", "miou": 40.0}
    assert check_record(old)["schema_version"] == 1
    assert check_record({"miou": 40.0})["schema_version"] == 1  # before `task`: semantic
    assert check_record({**old, "schema_version": SCHEMA_VERSION})["schema_version"] == SCHEMA_VERSION
    for version in (SCHEMA_VERSION + 1, 0, "2", True):
        with pytest.raises(CarError, match=r"schema_version .* reads versions 1 to") as err:
            check_record({**old, "schema_version": version}, "run/metrics.json")
        assert str(err.value).startswith("run/metrics.json") and str(err.value).count(". ") == 0
    with pytest.raises(CarError, match="task 'panoptic', which this car-bench does not know"):
        check_record({"task": "panoptic", "miou": 1.0})
    with pytest.raises(CarError, match="no 'j_and_f' score"):
        check_record({"task": "video", "miou": 1.0})
    with pytest.raises(CarError, match="no 'miou' score"):
        check_record({"task": "semantic"})
    with pytest.raises(CarError, match="does not know"):
        view_of({"task": "panoptic"})


def test_report_reads_an_unversioned_referring_record(tmp_path):
    """A metrics.json written before the schema (no schema_version) still gets its report, drawn by
    the referring view: the precision curve and the IoU histogram, no class charts."""
    record = {"dataset": "refcoco", "task": "referring", "split": "val", "num_images": 2,
              **{k: v for k, v in referring_metric().compute().items()},
              "backbone": {"name": "tiny", "proposal": "a", "classifier": "b", "pretrained": [None, None]},
              "elapsed_s": 1.0, "car_s_per_image": 0.1, "config": {}}
    (tmp_path / "metrics.json").write_text(json.dumps(record))
    text = write_report(tmp_path).read_text()
    figures = sorted(p.name for p in (tmp_path / "figures").glob("*.png"))
    assert figures == ["iou_histogram.png", "precision_curve.png", "timing.png"]
    assert "2 units (object), 3 sentences" in text and "oIoU" in text
    record["schema_version"] = SCHEMA_VERSION + 1
    (tmp_path / "metrics.json").write_text(json.dumps(record))
    with pytest.raises(CarError, match="schema_version"):
        write_report(tmp_path)
