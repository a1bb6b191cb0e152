"""The benchmark script runs and reports equal outputs for both paths (numbers are not asserted)."""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_bench_car_smoke(tmp_path):
    cmd = [sys.executable, "benchmarks/bench_car.py", "--proposal", "car-micro-vit", "--classifier", "car-micro-vit",
           "--queries", "3", "--out-dir", str(tmp_path), "--name", "smoke", "--memory-curve", "1,2"]
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, timeout=600)
    report = json.loads((tmp_path / "smoke.json").read_text())
    assert report["outputs_equal"]["labels_identical"] and report["outputs_equal"]["history"]
    assert report["outputs_equal"]["max_abs_map_diff"] <= report["outputs_equal"]["tolerance"]
    assert set(report["fast"]["stages_s_per_image"]) >= {"proposals", "classification", "crf", "prompts"}
    assert [p["queries"] for p in report["memory_curve"]] == [1, 2] and report["peak_memory_mb"] > 0
