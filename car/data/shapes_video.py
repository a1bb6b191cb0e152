"""Procedural video clips in the shapes world: the offline default for video (`dataset=shapes_video`).

Each clip is a static textured background (car/data/shapes.py's textures) with 2-3 glyphs of
distinct classes that move in straight lines (bouncing off the borders) and turn; one glyph of
some clips enters the scene later (absent in the first frames), and the glyphs pass over one
another (a fixed drawing order, so the later glyph occludes the earlier one). Everything comes
from a seed: clip `v` is drawn from `np.random.SeedSequence([seed, SPLIT_IDS[split], v])`.

Ground truth follows DAVIS's layout semantics: per frame an object-id map, 0 background, 1..N the
clip's glyphs (their visible pixels), 255 void on a ~2 px band along every object border (as the
still shapes scenes do). The glyph present from the first frame gets the highest id, because the
DAVIS unsupervised protocol counts a sequence's objects as the highest id of its first frame.

Expressions name the glyph (the embedded tiny CLIP knows the ten glyph names, not colours). Two
expression sets play the role of Ref-DAVIS's two annotators: `name` ("star") and `phrase`
("the star"); each item is one (expression set, clip) pair in the agreed video sample format:

    {"video_id": str, "expression_set": str, "frame_ids": list[str],
     "frames": uint8 tensor [T, 3, H, W], "target": uint8 tensor [T, H, W],
     "expressions": {object id: expression}}
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import Dataset

from car.data.common import choose_expression_sets
from car.data.shapes import (
    CLASSES,
    DEFAULT_SIZE,
    IGNORE_INDEX,
    SPLIT_IDS,
    TEXTURES,
    _object_colour,
    _shape_mask,
    _texture,
    ignore_band,
)
from car.errors import CarError

EXPRESSION_SETS = {"name": "{}", "phrase": "the {}"}  # set name -> how its expressions say the glyph


def clip_seed(split: str, index: int, seed: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([int(seed), SPLIT_IDS[split], int(index)])


def plan_glyphs(rng: np.random.Generator, size: int, num_frames: int) -> list[dict]:
    """2-3 glyphs of distinct classes: start position, velocity, turn, radius, first frame, colour seed.
    The list is in drawing order; the last glyph is drawn on top and is present from frame 0."""
    n = int(rng.choice([2, 3], p=[0.4, 0.6]))
    classes = rng.choice(len(CLASSES), size=n, replace=False) + 1
    s = size / 64.0
    glyphs = []
    for k in range(n):
        r = rng.uniform(9.0, 13.0) * s
        speed = rng.uniform(1.5, 3.0) * s
        heading = rng.uniform(0, 2 * math.pi)
        enters = int(rng.integers(2, max(3, num_frames // 2))) if k == 0 and n == 3 and rng.uniform() < 0.7 else 0
        glyphs.append({"cls": int(classes[k]), "r": r, "x": rng.uniform(r, size - r), "y": rng.uniform(r, size - r),
                       "vx": speed * math.cos(heading), "vy": speed * math.sin(heading),
                       "angle": rng.uniform(0, 2 * math.pi), "spin": rng.uniform(-0.15, 0.15), "enters": enters,
                       "shape_seed": int(rng.integers(2**31))})
    return glyphs


def glyph_at(g: dict, t: int, size: int) -> tuple[float, float, float]:
    """(x, y, angle) of glyph g at frame t: straight motion reflected at the borders."""
    def bounce(p0: float, v: float, lo: float, hi: float) -> float:
        span = hi - lo
        p = (p0 - lo + v * t) % (2 * span)
        return lo + (p if p <= span else 2 * span - p)

    lo, hi = g["r"] * 0.8, size - g["r"] * 0.8
    return bounce(g["x"], g["vx"], lo, hi), bounce(g["y"], g["vy"], lo, hi), g["angle"] + g["spin"] * t


def render_clip(seed_seq: np.random.SeedSequence, num_frames: int, size: int = DEFAULT_SIZE) -> dict:
    """-> {"frames": uint8 [T, H, W, 3], "target": uint8 [T, H, W] (ids 1..N, 0 bg, 255 void),
    "classes": {object id: class id 1..C}}."""
    rng = np.random.default_rng(seed_seq)
    background = _texture(TEXTURES[rng.integers(len(TEXTURES))], size, rng)  # float [H, W, 3]
    background = background * rng.uniform(0.85, 1.1)
    glyphs = plan_glyphs(rng, size, num_frames)
    colours = [_object_colour(rng, background) for _ in glyphs]
    order = sorted(range(len(glyphs)), key=lambda k: (glyphs[k]["enters"] == 0, k))  # late entrants first
    ids = {k: i + 1 for i, k in enumerate(order)}  # drawing index -> object id; the top glyph gets the highest
    frames = np.zeros((num_frames, size, size, 3), np.uint8)
    target = np.zeros((num_frames, size, size), np.uint8)
    for t in range(num_frames):
        img = background + rng.normal(0, 3, background.shape).astype(np.float32)  # fresh sensor noise per frame
        owner = np.zeros((size, size), np.int64)  # object id covering each pixel
        for k, g in enumerate(glyphs):
            if t < g["enters"]:
                continue
            x, y, angle = glyph_at(g, t, size)
            shape_rng = np.random.default_rng(g["shape_seed"])  # same ring/crescent proportions every frame
            cover = _shape_mask(CLASSES[g["cls"] - 1], size, x, y, g["r"], angle, shape_rng)[..., None]  # [H, W, 1]
            img = img * (1 - cover) + colours[k][None, None, :] * cover
            owner[cover[..., 0] > 0.5] = ids[k]
        label = owner.copy()
        label[ignore_band(owner, 1)] = IGNORE_INDEX
        frames[t] = np.clip(np.round(img), 0, 255).astype(np.uint8)
        target[t] = label
    return {"frames": frames, "target": target, "classes": {ids[k]: g["cls"] for k, g in enumerate(glyphs)}}


class ShapesVideoDataset(Dataset):
    """`num_videos` clips of `num_frames` frames, once per expression set (set-major order)."""

    def __init__(self, split: str = "val", num_videos: int = 6, num_frames: int = 8, size: int = DEFAULT_SIZE,
                 seed: int = 0, expression_sets: list[str] | None = None, limit: int | None = None):
        if split not in SPLIT_IDS:
            raise CarError(f"shapes_video split must be one of {', '.join(SPLIT_IDS)}, got '{split}'.")
        sets = choose_expression_sets("shapes_video", expression_sets, EXPRESSION_SETS)
        if int(num_frames) < 1 or int(num_videos) < 1:
            raise CarError(f"shapes_video needs at least one clip of at least one frame, got num_videos={num_videos}, "
                           f"num_frames={num_frames}.")
        self.split, self.size, self.seed = split, int(size), int(seed)
        self.num_videos, self.num_frames = int(num_videos), int(num_frames)
        self.expression_sets = sets
        self.items = [(s, v) for s in sets for v in range(self.num_videos)]
        if limit is not None:
            self.items = self.items[: int(limit)]

    def __len__(self) -> int:
        return len(self.items)

    def video_id(self, v: int) -> str:
        return f"shapes_{self.split}_{v:03d}"

    def __getitem__(self, i: int) -> dict:
        expression_set, v = self.items[i]
        clip = render_clip(clip_seed(self.split, v, self.seed), self.num_frames, self.size)
        form = EXPRESSION_SETS[expression_set]
        return {
            "video_id": self.video_id(v),
            "expression_set": expression_set,
            "frame_ids": [f"{t:05d}" for t in range(self.num_frames)],
            "frames": torch.from_numpy(clip["frames"]).permute(0, 3, 1, 2).contiguous(),  # [T, 3, H, W] uint8
            "target": torch.from_numpy(clip["target"]),  # [T, H, W] uint8
            "expressions": {oid: form.format(CLASSES[cls - 1]) for oid, cls in sorted(clip["classes"].items())},
        }
