"""Ids with '/' (Cityscapes' `city/stem`) work everywhere a file is named after an id: overlays, the
prediction store (and its resume), report.html (issue #25: every Cityscapes evaluation crashed)."""

from __future__ import annotations

import json

import pytest

from car.config import compose
from car.reporting.report_html import main as report_main
from car.run.evaluation import evaluate
from tests.test_benchmark_datasets import cityscapes_tree

RUN = ["backbone=micro_random", "dataset=cityscapes", "logger=none", "trainer.enable_progress_bar=false",
       "car.crf.enabled=false", "num_overlays=3"]
IDS = ["frankfurt/frankfurt_000000_000000", "frankfurt/frankfurt_000000_000001", "lindau/lindau_000000_000000"]


@pytest.mark.slow
def test_cityscapes_run_writes_overlays_predictions_and_report(tmp_path, capsys):
    cityscapes_tree(tmp_path, per_city=(("frankfurt", 2), ("lindau", 1)))  # the official leftImg8bit/gtFine layout
    run_dir = tmp_path / "run"
    metrics = evaluate(compose(RUN + [f"paths.data_root={tmp_path}"], output_dir=run_dir))
    assert metrics["num_images"] == 3
    overlays = sorted(p.relative_to(run_dir / "overlays").as_posix() for p in (run_dir / "overlays").rglob("*.png"))
    assert overlays == [f"{i}.png" for i in IDS]
    stored = sorted(p.relative_to(run_dir / "predictions").as_posix() for p in (run_dir / "predictions").rglob("*.npz"))
    assert [s.split("/", 1)[1] for s in stored] == [f"{i}.npz" for i in IDS]
    report = (run_dir / "report.html").read_text()
    assert all(f'data-file="overlays/{i}.png"' in report for i in IDS)
    assert f"report: {run_dir / 'report.html'}" in capsys.readouterr().out

    again = evaluate(compose(RUN + [f"paths.data_root={tmp_path}"], output_dir=run_dir))  # resume from the store
    assert again["resumed_images"] == 3 and again["confusion_matrix"] == metrics["confusion_matrix"]
    (run_dir / "report.html").unlink()
    assert report_main([str(run_dir)]) == 0 and (run_dir / "report.html").is_file()
    assert json.loads((run_dir / "metrics.json").read_text())["num_images"] == 3
