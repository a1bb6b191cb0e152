"""evaluate() validates its config itself and checks the inputs once; run_evaluation (what the command
line calls after its own check) takes the typed settings and checks nothing again."""

import pytest

import car.run.evaluation as evaluation
from car.config import compose
from car.settings import Settings, SettingsError, validate

QUIET = ["logger=none", "num_overlays=0", "trainer.enable_progress_bar=false", "dataset.loader.num_images=1"]


def test_evaluate_validates_then_checks_inputs_once(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(evaluation, "check_inputs", calls.append)
    with pytest.raises(SettingsError, match=r"^car\.theta=2 is not allowed"):
        evaluation.evaluate(compose(QUIET + ["car.theta=2"], output_dir=tmp_path / "bad"))
    assert calls == []  # refused before the input check and before anything loads
    cfg = compose(QUIET, output_dir=tmp_path / "run")
    first = evaluation.evaluate(cfg)
    assert len(calls) == 1 and isinstance(calls[0], Settings) and calls[0].config is cfg
    again = evaluation.run_evaluation(validate(cfg))  # the command line's path: its own check came first
    assert len(calls) == 1 and again["resumed_images"] == 1 and again["miou"] == first["miou"]
