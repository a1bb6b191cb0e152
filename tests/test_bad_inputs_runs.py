"""Bad inputs to car-evaluate and report_html (issue #25): damaged stored predictions, every sample
skipped, strict metrics.json, read-only or full run directories, GPU settings without a GPU, a
truncated or wrongly typed metrics.json: a counted recompute or one sentence with exit code 2."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import car.outputs
from car.config import compose
from car.errors import CarError
from car.reporting.report_html import main as report_html
from car.run.evaluation import evaluate
from tests.conftest import REPO
from tests.fs_faults import run_with_mount
from tests.test_benchmark_datasets import cityscapes_tree

SHAPES = ["dataset=shapes", "backbone=micro_random", "logger=none", "num_overlays=0",
          "trainer.enable_progress_bar=false", "car.crf.enabled=false"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(REPO)}


def cli(args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "evaluate.py", *args], cwd=REPO, env=ENV, capture_output=True, text=True,
                          timeout=600, check=False, **kwargs)


def last_error(done) -> str:
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, done.stderr[-3000:]
    return lines[0]


def strict(path) -> dict:
    return json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{path} holds {c}: not strict JSON"))


@pytest.mark.bad_input("a garbage .npz in predictions/<key>/ (resume)", "car-evaluate")
def test_damaged_stored_prediction_is_recomputed_and_counted(tmp_path, answer):
    first = evaluate(compose(SHAPES + ["dataset.limit=3"], output_dir=tmp_path))
    stored = sorted(tmp_path.glob("predictions/*/*.npz"))
    assert len(stored) == 3
    stored[1].write_bytes(b"PK\x03\x04 not a zip at all")
    again = evaluate(compose(SHAPES + ["dataset.limit=3"], output_dir=tmp_path))
    assert again["resumed_images"] == 2 and again["recomputed_damaged"]["count"] == 1
    assert stored[1].name in again["recomputed_damaged"]["samples"][0]["error"]
    assert again["confusion_matrix"] == first["confusion_matrix"]
    with np.load(stored[1]) as fixed:  # the damaged file was replaced by the recomputed prediction
        assert fixed["pred"].shape == (64, 64)
    answer(f"recomputed and counted (metrics.json recomputed_damaged; one console line): "
           f"{again['recomputed_damaged']['samples'][0]['error']}")


def broken_cityscapes(tmp_path):
    data = cityscapes_tree(tmp_path, per_city=(("frankfurt", 2),))
    for image in data.glob("leftImg8bit/val/*/*.png"):
        image.write_bytes(image.read_bytes()[:100])  # every image truncated
    return tmp_path


@pytest.mark.bad_input("on_bad_sample=skip with every sample bad", "car-evaluate")
def test_every_sample_skipped_is_an_error(tmp_path, answer):
    root = broken_cityscapes(tmp_path)
    args = ["backbone=micro_random", "dataset=cityscapes", "logger=none", "on_bad_sample=skip",
            f"paths.data_root={root}", "trainer.enable_progress_bar=false"]
    with pytest.raises(CarError, match=r"No sample was evaluated: all 2 of 2 were skipped"):
        evaluate(compose(args, output_dir=tmp_path / "run"))
    assert not (tmp_path / "run" / "metrics.json").exists()
    err = last_error(cli(args + [f"hydra.run.dir={tmp_path / 'cli'}"]))
    assert "frankfurt_000000_000000_leftImg8bit.png is corrupt or truncated" in err
    assert not (tmp_path / "cli" / "metrics.json").exists()
    answer(f"exit 2, no metrics.json: {err}")


def test_metrics_json_is_strict_json(tmp_path):
    from car.reporting.results import write_outputs

    path = write_outputs({"miou": float("nan"), "per_class_iou": {"a": float("nan"), "b": 50.0}, "task": "semantic"},
                         tmp_path)
    assert strict(path) == {"miou": None, "per_class_iou": {"a": None, "b": 50.0}, "task": "semantic"}
    evaluate(compose(SHAPES + ["dataset.limit=1"], output_dir=tmp_path / "run"))
    assert strict(tmp_path / "run" / "metrics.json")["num_images"] == 1


@pytest.mark.bad_input("a full disk when metrics.json is written (ENOSPC injected)", "car-evaluate")
def test_full_disk_at_metrics_json(tmp_path, monkeypatch, answer):
    evaluate(compose(SHAPES + ["dataset.limit=1"], output_dir=tmp_path))
    earlier = (tmp_path / "metrics.json").read_bytes()
    real = os.fsync

    def fsync(fd):
        if ".metrics.json." in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(car.outputs.os, "fsync", fsync)
    with pytest.raises(CarError) as err:
        evaluate(compose(SHAPES + ["dataset.limit=1"], output_dir=tmp_path))
    assert str(err.value).startswith(f"Cannot write {tmp_path / 'metrics.json'}: the disk is full")
    assert (tmp_path / "metrics.json").read_bytes() == earlier and not list(tmp_path.glob(".metrics.json.*"))
    answer(f"exit 2, the earlier metrics.json kept whole: {err.value}")


@pytest.mark.slow
@pytest.mark.parametrize("options, prepare, cause", [
    pytest.param("ro,size=64k", "", "the file system is read-only",
                 marks=pytest.mark.bad_input("hydra.run.dir on a read-only tmpfs", "car-evaluate")),
    pytest.param("size=64k", "head -c 70000 /dev/zero > {mount}/fill || true", "the disk is full",
                 marks=pytest.mark.bad_input("hydra.run.dir on a full tmpfs", "car-evaluate")),
])
def test_run_dir_read_only_or_full(tmp_path, options, prepare, cause, answer):
    mount = tmp_path / "disk"
    done = run_with_mount([sys.executable, "evaluate.py", *SHAPES, "dataset.limit=1", f"hydra.run.dir={mount / 'run'}"],
                          mount, options, cwd=REPO, env=ENV, prepare=prepare.format(mount=mount))
    err = last_error(done)
    assert err == f"error: Cannot write into the run directory (hydra.run.dir) {mount / 'run'}: {cause}; " + \
        ("free some space or choose another output folder." if "full" in cause else "choose another output folder.")
    answer(f"exit 2, before Hydra writes there: {err}")


@pytest.mark.parametrize("override, match", [
    pytest.param("trainer=gpu", "asks for a CUDA GPU, but this machine has none: run with trainer=cpu",
                 marks=pytest.mark.bad_input("trainer=gpu on a machine without a GPU", "car-evaluate")),
    pytest.param("trainer.accelerator=quantum", "Unknown trainer.accelerator 'quantum'",
                 marks=pytest.mark.bad_input("an unknown trainer.accelerator", "car-evaluate")),
])
def test_accelerator_is_checked_first(tmp_path, override, match, answer):
    err = last_error(cli([*SHAPES, "dataset.limit=1", override, f"hydra.run.dir={tmp_path}"]))
    assert match in err and not (tmp_path / "metrics.json").exists()
    answer(f"exit 2: {err}")


@pytest.mark.parametrize("content, match", [
    pytest.param('{"dataset": "shapes", "miou": 3', "is not valid JSON (JSONDecodeError",
                 marks=pytest.mark.bad_input("a truncated metrics.json", "car-report-html")),
    pytest.param("[1, 2]", "holds a JSON list, not the object a run writes",
                 marks=pytest.mark.bad_input("a metrics.json holding a list", "car-report-html")),
    pytest.param('{"task": "semantic", "miou": "high", "per_class_iou": [1, 2], "num_images": "x"}',
                 "does not have the fields and types a run writes",
                 marks=pytest.mark.bad_input("a metrics.json with wrongly typed fields", "car-report-html")),
])
def test_report_html_on_a_bad_metrics_json(tmp_path, capsys, content, match, answer):
    (tmp_path / "metrics.json").write_text(content)
    assert report_html([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and match in err and "\n" not in err
    assert not (tmp_path / "report.html").exists()
    answer(f"exit 2: {err}")
