"""Convolutional stems for our own small ViTs (the tiny CLIP of the shapes world).

open_clip's ViT embeds patches with one strided convolution, `visual.conv1`. Trained from
scratch on little data, a ViT learns shapes much faster with a few small strided convolutions
in its place (measured here: see car/assets/tiny_clip.md). A stem is declared as data, in a
sidecar file `model_configs/<arch>.stem.json` (open_clip ignores it: it has no model keys):

    {"channels": [32, 64], "kernel_size": 3}     # then a last conv to the tower width

The stem keeps conv1's contract, [B, 3, H, W] -> [B, width, H/patch, W/patch] for H, W multiples
of the patch size (patch = 2 ** number of convolutions), so every caller of `visual.conv1`
(open_clip's forward, car/clip/surgery.py) works unchanged. load_clip applies it before weights
are loaded, so checkpoints of stem models load through the same path as any other.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch.nn as nn

MODEL_CONFIG_DIR = Path(__file__).parent / "model_configs"


class ConvStem(nn.Sequential):
    def __init__(self, width: int, patch_size: int, channels: list[int], kernel_size: int = 3):
        layers, c_in = [], 3
        n_convs = int(math.log2(patch_size))
        if 2**n_convs != patch_size or len(channels) != n_convs - 1:
            raise ValueError(f"a stem for patch {patch_size} needs {n_convs - 1} hidden channel sizes, got {channels}")
        for c_out in channels:
            layers += [nn.Conv2d(c_in, c_out, kernel_size, stride=2, padding=kernel_size // 2), nn.GELU()]
            c_in = c_out
        layers.append(nn.Conv2d(c_in, width, kernel_size, stride=2, padding=kernel_size // 2))
        super().__init__(*layers)


def stem_spec(arch: str) -> dict | None:
    path = MODEL_CONFIG_DIR / f"{arch}.stem.json"
    return json.loads(path.read_text()) if path.is_file() else None


def apply_stem(model, arch: str) -> None:
    """Replace model.visual.conv1 by the arch's declared stem (no-op when none is declared)."""
    spec = stem_spec(arch)
    if spec is None:
        return
    visual = model.visual
    width = visual.conv1.out_channels
    patch = visual.patch_size if isinstance(visual.patch_size, int) else visual.patch_size[0]
    visual.conv1 = ConvStem(width, patch, list(spec["channels"]), int(spec.get("kernel_size", 3)))
