"""benchmarks/device_check.sh on the CPU: the tiny configuration CI can run (micro backbones, 2 small
VOC images, 3 queries); the GPU tests skip, the benchmark and report steps run as on a GPU machine."""

import hashlib
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_device_check_runs_on_the_cpu(tmp_path):
    out = tmp_path / "out"
    tracked = REPO / "results" / "benchmarks.md"
    before = hashlib.sha256(tracked.read_bytes()).hexdigest()
    env = {**os.environ, "OUT": str(out), "PY": sys.executable, "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(["bash", "benchmarks/device_check.sh", "--cpu"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=900)
    log = (out / "device_check.log").read_text() if (out / "device_check.log").is_file() else ""
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:] + log[-3000:]

    summary = json.loads((out / "device_check.json").read_text())
    assert summary["device"] == "cpu" and summary["size"] == "tiny" and summary["ok"]
    assert [s["name"] for s in summary["steps"]] == ["gpu_tests", "bench"]
    assert all(s["status"] == "ok" for s in summary["steps"])
    tests = summary["gpu_tests"]
    assert tests["failed"] == 0 and tests["passed"] == 0 and tests["skipped"] >= 5  # no CUDA here
    assert all("needs CUDA" in t["message"] for t in tests["tests"])

    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert len(files) <= 8  # what the device tool brings back from $OUT
    assert set(files) == {"device_check.json", "device_check.log", "benchmarks.md",
                          "benchmarks/device_cpu_micro_q3_fp32.json",
                          "benchmarks/device_cpu_micro_q3_fp16_weights.json"}

    fp32 = json.loads((out / "benchmarks" / "device_cpu_micro_q3_fp32.json").read_text())
    assert fp32["setting"]["precision"] == "fp32" and fp32["setting"]["images"] == 2
    assert fp32["fast"]["first_image_s"] > 0 and fp32["fast"]["steady_s_per_image"] > 0
    assert set(fp32["fast"]["steady_stages_s_per_image"]) >= {"proposals", "classification", "crf", "prompts"}
    assert fp32["speedup_steady"] > 0 and fp32["reference_images"] == [fp32["fast"]["per_image"][1]["image"]]
    assert fp32["outputs_equal"]["labels_identical"] and fp32["outputs_equal"]["history"]
    overlap = fp32["crf_overlap"]
    assert overlap["labels_identical"] and overlap["crf_workers"] == 1 and overlap["overlapped_s_per_image"] > 0
    half = json.loads((out / "benchmarks" / "device_cpu_micro_q3_fp16_weights.json").read_text())
    assert not half.get("failed") and half["setting"]["precision"] == "fp16_weights"
    assert half["outputs_equal"]["labels_identical"]

    md = (out / "benchmarks.md").read_text()
    assert "## Device check" in md and "steady state" in md and "device_cpu_micro_q3_fp16_weights" in md
    assert hashlib.sha256(tracked.read_bytes()).hexdigest() == before  # tiny runs leave the tree's report alone
