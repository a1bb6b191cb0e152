"""Shared fixtures. Real data samples live in ../shared/data (never copied into the repo)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never wait on the network in tests

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
VOC_ROOT = SHARED_DATA / "VOCdevkit" / "VOC2012"


def load_script(path: Path, name: str):
    """Import a script that is not part of a package (datasets/*/prepare.py, scripts/*.py) as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def require_shared_data() -> Path:
    if not VOC_ROOT.is_dir():
        pytest.skip(f"real data samples not found at {SHARED_DATA}")
    return SHARED_DATA


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
