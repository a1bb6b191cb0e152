"""What a run prints (car/run/console.py, car/reporting/results.py): no library chatter unless verbose=true, one line
for a resumed run and for skipped samples, and "not comparable (why)" instead of a Δ to the paper."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from car.config import compose
from car.run.evaluation import evaluate
from tests.conftest import REPO

CHATTER = ("💡", "Tip:", "litlogger", "GPU available", "TPU available", "LeafSpec", "predict returned None",
           "No pretrained weights loaded", "Parsing model identifier", "Model car-tiny-vit creation")
RUN = ["dataset.limit=1", "num_overlays=0", "logger=none", "trainer.enable_progress_bar=false"]


def run_cli(args, run_dir):
    proc = subprocess.run([sys.executable, "evaluate.py", *args, f"hydra.run.dir={run_dir}"], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_default_run_is_quiet_and_verbose_brings_the_chatter_back(tmp_path):
    """The offline default (tiny CLIP from its local file): only our lines; then the same run dir with
    verbose=true resumes (one line) and shows Lightning's lines again."""
    quiet = run_cli(RUN, tmp_path / "run")
    assert not [c for c in CHATTER if c in quiet], quiet
    assert "| shapes | tiny | 1 |" in quiet and "resumed" not in quiet and "skipped" not in quiet
    loud = run_cli(RUN + ["verbose=true"], tmp_path / "run")
    store = next((tmp_path / "run" / "predictions").iterdir())
    assert f"resumed 1 image from {store}\n" in loud
    assert "GPU available" in loud and "predict returned None" in loud
    assert "No pretrained weights loaded" not in loud  # the tiny CLIP's weights are loaded: no false alarm


def voc_tree(root, broken=("b",)):
    """A 3-image VOC layout of synthetic images; the `broken` JPEGs hold garbage bytes."""
    voc = root / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, image_id in enumerate(("a", "b", "c")):
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(voc / "JPEGImages" / f"{image_id}.jpg")
        label = np.zeros((48, 64), np.uint8)
        label[10:30, 20:40] = 1 + i  # aeroplane, bicycle, bird
        Image.fromarray(label, mode="L").save(voc / "SegmentationClass" / f"{image_id}.png")
        if image_id in broken:
            (voc / "JPEGImages" / f"{image_id}.jpg").write_bytes(b"not a jpeg")
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("a\nb\nc\n")
    return root


def test_skipped_samples_and_a_run_off_the_papers_setting(tmp_path, capsys):
    cfg = compose(["dataset=voc", "backbone=micro_random", f"paths.data_root={voc_tree(tmp_path / 'data')}",
                   "on_bad_sample=skip", "car.crf.enabled=false"] + RUN[1:], output_dir=tmp_path / "out")
    metrics = evaluate(cfg)
    out = capsys.readouterr().out
    assert "skipped 1 sample (listed in metrics.json)\n" in out
    row = next(line for line in out.splitlines() if line.startswith("| voc |"))
    assert "| 67.6 | not comparable (random weights (backbone.proposal.pretrained=null, " in row
    assert "1 sample skipped (on_bad_sample=skip)" in row and "car.crf.enabled=false (paper true)" in row
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["comparison"] == metrics["comparison"] and saved["comparison"]["comparable"] is False
    assert saved["comparison"]["reason"] in row and saved["skipped"]["count"] == 1
