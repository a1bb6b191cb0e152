"""Shared fixtures. Real data samples live in ../shared/data (never copied into the repo).

`CAR_SHARED_DATA` names another folder for them; pointing it at a missing path
(`CAR_SHARED_DATA=/nonexistent`) runs the suite as on a fresh clone: every test that needs the
samples skips with `SHARED_DATA_REASON`, everything else builds its own fixtures.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never wait on the network in tests

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CAR_SHARED_DATA") or REPO.parent / "shared" / "data")
VOC_ROOT = SHARED_DATA / "VOCdevkit" / "VOC2012"
SHARED_DATA_REASON = f"real data samples not found at {SHARED_DATA} (set CAR_SHARED_DATA)"


def load_script(path: Path, name: str):
    """Import a script that is not part of a package (datasets/*/prepare.py, scripts/*.py) as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(script, argv, capsys) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of a loaded script's main(argv) (paths may be given as Path)."""
    code = script.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def has_shared_data(part: str = "VOCdevkit/VOC2012") -> bool:
    return (SHARED_DATA / part).exists()


def require_shared_data(part: str = "VOCdevkit/VOC2012") -> Path:
    """Skip the calling test unless the samples (`part` of them) are there; returns SHARED_DATA."""
    if not has_shared_data(part):
        pytest.skip(SHARED_DATA_REASON)
    return SHARED_DATA


def needs_shared_data(part: str = "VOCdevkit/VOC2012"):
    """Mark for tests (or modules: `pytestmark = needs_shared_data()`) that read the real samples."""
    return pytest.mark.skipif(not has_shared_data(part), reason=SHARED_DATA_REASON)


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` skip without CUDA (benchmarks/device_check.sh runs them on a GPU machine)."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs CUDA (a GPU test: benchmarks/device_check.sh runs these)")
        for item in gpu_items:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return require_shared_data()


@pytest.fixture(scope="session")
def voc_image() -> np.ndarray:
    """A real VOC val image (bicycle + person), [375, 500, 3]... loaded once."""
    require_shared_data()
    return np.array(Image.open(VOC_ROOT / "JPEGImages" / "2007_000129.jpg").convert("RGB"))


@pytest.fixture(scope="session")
def micro_clip():
    """The tiny random-init test architecture (car-micro-vit)."""
    import torch

    from car.clip.load import load_clip

    torch.manual_seed(0)
    return load_clip({"arch": "car-micro-vit", "pretrained": None})


@pytest.fixture(scope="session")
def vitb16_clip():
    """A randomly initialised real ViT-B/16 CLIP (QuickGELU, as for OpenAI weights)."""
    import torch

    from car.clip.load import load_clip

    torch.manual_seed(0)
    return load_clip({"arch": "ViT-B-16", "pretrained": None, "quick_gelu": True})


# ------------------------------------------------------------------ the bad-input table (results/reliability.md)

_TMP_PATHS = re.compile(r"/tmp/pytest-of-[^/\s]+/pytest-\d+/(?:popen-gw\d+/)?[^/\s'\"]+")


def answer_text(text: str) -> str:
    """A recorded answer without this machine's paths: pytest's tmp folders -> <tmp>, the repo -> <repo>."""
    text = _TMP_PATHS.sub("<tmp>", str(text)).replace(str(REPO), "<repo>")
    return " ".join(text.split())


@pytest.fixture
def answer(request):
    """`answer(text)`: what the bad input of this `@pytest.mark.bad_input(what, entry)` test got (an error
    sentence with its exit code, a counted skip ...). With CAR_RELIABILITY_LOG set, it is appended there
    as a JSON line; scripts/reliability_table.py turns those lines into results/reliability.md's table."""
    marker = request.node.get_closest_marker("bad_input")
    assert marker is not None, "answer() needs @pytest.mark.bad_input(what, entry) on the test"

    def record(text: str) -> str:
        log = os.environ.get("CAR_RELIABILITY_LOG")
        if log:
            row = {"what": marker.args[0], "entry": marker.args[1], "answer": answer_text(text),
                   "test": request.node.nodeid.split("[")[0]}
            with open(log, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
        return text

    return record
