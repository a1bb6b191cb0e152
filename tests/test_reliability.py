"""Resumable runs, determinism, bad inputs, untrusted files, long-run memory (issue: reliability)."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from car.config import compose
from car.errors import CarError
from car.reporting.results import load_published
from car.run.evaluation import evaluate
from tests.conftest import REPO, VOC_ROOT, require_shared_data

SHAPES = ["dataset=shapes", "backbone=micro_random", "logger=none", "num_overlays=0",
          "trainer.enable_progress_bar=false"]


def run_cli(args, run_dir, **kwargs):
    return subprocess.Popen([sys.executable, "evaluate.py", *args, f"hydra.run.dir={run_dir}"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def predictions(run_dir):
    files = sorted(run_dir.glob("predictions/*/*.npz"))
    return {f.name: np.load(f)["pred"] for f in files}


@pytest.mark.slow
def test_resume_after_sigkill_equals_clean_run(tmp_path):
    args = SHAPES + ["dataset.limit=16"]
    clean = run_cli(args, tmp_path / "clean")
    assert clean.wait(timeout=600) == 0, clean.stderr.read()
    killed_dir = tmp_path / "killed"
    proc = run_cli(args, killed_dir)
    deadline = time.time() + 300
    while len(list(killed_dir.glob("predictions/*/*.npz"))) < 4 and time.time() < deadline:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list(killed_dir.glob("predictions/*/*.npz")))
    assert 4 <= done_before < 16 and not (killed_dir / "metrics.json").exists()
    # a torn temporary file may remain after SIGKILL; it is never read (only *.npz are)
    resumed = run_cli(args, killed_dir)
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()
    a = json.loads((tmp_path / "clean" / "metrics.json").read_text())
    b = json.loads((killed_dir / "metrics.json").read_text())
    assert b["resumed_images"] >= done_before and b["num_images"] == 16
    assert a["confusion_matrix"] == b["confusion_matrix"] and a["miou"] == b["miou"]


def test_config_change_does_not_reuse_predictions(tmp_path):
    first = evaluate(compose(SHAPES + ["dataset.limit=3"], output_dir=tmp_path))
    again = evaluate(compose(SHAPES + ["dataset.limit=3"], output_dir=tmp_path))
    changed = evaluate(compose(SHAPES + ["dataset.limit=3", "car.theta=0.3"], output_dir=tmp_path))
    assert first["resumed_images"] == 0 and again["resumed_images"] == 3
    assert changed["resumed_images"] == 0  # a new run key: nothing stale is reused
    assert len(list(tmp_path.glob("predictions/*"))) == 2


def test_same_seed_gives_byte_identical_predictions(tmp_path):
    for name in ("a", "b"):
        evaluate(compose(SHAPES + ["dataset.limit=3"], output_dir=tmp_path / name))
    a, b = predictions(tmp_path / "a"), predictions(tmp_path / "b")
    assert a.keys() == b.keys() and len(a) == 3
    assert all(a[k].tobytes() == b[k].tobytes() for k in a)


def _voc_tree_with_corrupt_image(tmp_path):
    require_shared_data()
    root = tmp_path / "data" / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True)
    ids = ["2007_000033", "2007_000042"]
    for i in ids:
        (root / "JPEGImages" / f"{i}.jpg").write_bytes((VOC_ROOT / "JPEGImages" / f"{i}.jpg").read_bytes())
        label = f"SegmentationClass/{i}.png"
        (root / label).write_bytes((VOC_ROOT / label).read_bytes())
    data = (root / "JPEGImages" / "2007_000042.jpg").read_bytes()
    (root / "JPEGImages" / "2007_000042.jpg").write_bytes(data[: len(data) // 3])  # truncated JPEG
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(ids) + "\n")
    return tmp_path / "data"


@pytest.mark.bad_input("a truncated JPEG in a dataset, on_bad_sample=skip", "car-evaluate")
def test_on_bad_sample_skip_counts_and_lists(tmp_path, answer):
    data = _voc_tree_with_corrupt_image(tmp_path)
    base = ["backbone=micro_random", "dataset=voc", f"paths.data_root={data}", "logger=none", "car.crf.enabled=false"]
    metrics = evaluate(compose(base + ["on_bad_sample=skip"], output_dir=tmp_path / "skip"))
    assert metrics["num_images"] == 1 and metrics["skipped"]["count"] == 1
    assert "2007_000042.jpg" in metrics["skipped"]["samples"][0]["error"]
    with pytest.raises(CarError, match="2007_000042.jpg"):
        evaluate(compose(base, output_dir=tmp_path / "fail"))
    answer(f"a counted skip, listed in metrics.json with its reason: {metrics['skipped']['samples'][0]['error']}")


@pytest.mark.bad_input("a truncated JPEG in a dataset, on_bad_sample=fail (default)", "car-evaluate")
def test_cli_bad_sample_fail_is_one_sentence(tmp_path, answer):
    data = _voc_tree_with_corrupt_image(tmp_path)
    proc = run_cli(["backbone=micro_random", "dataset=voc", f"paths.data_root={data}", "logger=none",
                    "car.crf.enabled=false", "trainer.enable_progress_bar=false"], tmp_path / "run")
    assert proc.wait(timeout=300) == 2
    err = proc.stderr.read()
    assert err.count("error:") == 1 and "2007_000042.jpg" in err and "Traceback" not in err
    answer(f"exit 2: {err.strip().splitlines()[-1]}")


@pytest.mark.bad_input("an unknown config value (dataset=nonexistent)", "car-evaluate")
def test_unknown_config_value_lists_choices(tmp_path, answer):
    proc = run_cli(["dataset=nonexistent"], tmp_path / "run")
    assert proc.wait(timeout=120) != 0
    err = proc.stderr.read()
    assert "dataset/nonexistent" in err and "Available options" in err and "voc" in err
    answer(f"Hydra's error naming the group and listing the available options: {err.strip().splitlines()[0]}")


@pytest.mark.bad_input("an empty class list (dataset.queries=[])", "car-evaluate")
def test_empty_class_list_is_a_clear_error(tmp_path, answer):
    cfg = compose(SHAPES + ["dataset.queries=[]", "dataset.limit=1"], output_dir=tmp_path)
    with pytest.raises(CarError, match="defines no queries") as err:
        evaluate(cfg)
    answer(str(err.value))


@pytest.mark.bad_input("a published.yaml with a !!python/object/apply:os.system tag", "car-evaluate, car-compare")
def test_malicious_yaml_is_not_constructed(tmp_path, answer):
    marker = tmp_path / "pwned"
    (tmp_path / "published.yaml").write_text(f'car: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(CarError, match="not plain YAML") as err:
        load_published(tmp_path)
    assert not marker.exists()
    answer(f"nothing runs: {err.value}")


@pytest.mark.slow
def test_memory_does_not_grow_per_image(tmp_path):
    metrics = evaluate(compose(SHAPES + ["dataset.loader.num_images=300", "car.crf.enabled=false"],
                               output_dir=tmp_path))
    trace = dict(metrics["rss_mb_trace"])
    assert metrics["num_images"] == 300 and len(trace) == 12
    growth = trace[276] - trace[51]  # after warm-up, over 225 images
    print(f"RSS {trace[51]:.0f} MB at image 51 -> {trace[276]:.0f} MB at image 276 ({growth:+.1f} MB); "
          f"{metrics['predictions']['bytes_per_image']:.0f} bytes/image on disk")
    assert growth < 50


@pytest.mark.bad_input("dataset.loader._target_=os.system", "car-evaluate")
def test_config_cannot_name_arbitrary_callables(tmp_path, answer):
    cfg = compose(SHAPES + ["dataset.loader._target_=os.system"], output_dir=tmp_path)
    with pytest.raises(CarError, match="must name a loader in car.data") as err:
        evaluate(cfg)
    answer(str(err.value))
