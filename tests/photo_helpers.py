"""Test pictures for the single-image entry points (car.api, car-segment, car-demo): shapes scenes
saved as files, including a phone-camera-sized JPEG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from car.data.shapes import CLASSES, render_scene, scene_seed

PHONE_SIZE = (6000, 4000)  # width, height of a 24 MP phone photo


def scene(index: int = 12) -> dict:
    """A shapes val scene (64x64) with its class names present."""
    sc = render_scene(scene_seed("val", index))
    return {**sc, "present": sorted({CLASSES[c - 1] for c, _ in sc["objects"]})}


def save_scene(path: Path, index: int = 12, size: tuple[int, int] | None = None, quality: int = 92) -> Path:
    """Scene `index` saved at `size` (width, height; nearest upscaling) as PNG or JPEG by suffix."""
    img = Image.fromarray(scene(index)["image"])
    if size is not None:
        img = img.resize(size, Image.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **({"quality": quality} if path.suffix.lower() in (".jpg", ".jpeg") else {}))
    return path


def phone_jpeg(path: Path, index: int = 12) -> Path:
    """A 6000x4000 JPEG (a shapes scene enlarged), as a phone camera would write it."""
    return save_scene(path, index, PHONE_SIZE)


def as_array(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))
