"""Procedural "shapes" dataset: coloured glyphs on named textured backgrounds.

Everything is generated deterministically from a seed; nothing is stored on disk.

* ``CLASSES``: object classes; in label maps class ``CLASSES[k]`` has id ``k + 1``.
* ``TEXTURES``: background texture names (usable as CaR "background words").
* Label maps: 0 = background, 1..C = classes, 255 = ignore band (about 2 px) on every
  object border (object/background and object/object), like Pascal VOC.
* Splits use disjoint seed streams: image ``i`` of split ``s`` with base seed ``seed`` is
  rendered from ``np.random.SeedSequence([seed, SPLIT_IDS[s], i])``.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

try:  # torch is only needed for the Dataset wrapper
    from torch.utils.data import Dataset
except ImportError:  # pragma: no cover
    Dataset = object  # type: ignore[misc,assignment]

CLASSES: list[str] = [
    "circle",
    "square",
    "triangle",
    "star",
    "cross",
    "heart",
    "ring",
    "crescent",
    "arrow",
    "bolt",
]
TEXTURES: list[str] = ["stripes", "dots", "checkers", "noise", "gradient", "grid", "waves", "bricks"]
NUM_CLASSES = len(CLASSES)
IGNORE_INDEX = 255
DEFAULT_SIZE = 64
SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
_SS = 4  # supersampling factor for antialiased shape masks


# --------------------------------------------------------------------------------------
# shapes: each returns a float polygon list (unit radius, centred at 0) or draws itself
# --------------------------------------------------------------------------------------
def _regular(n: int, r: float = 1.0, phase: float = -math.pi / 2) -> np.ndarray:
    a = phase + 2 * math.pi * np.arange(n) / n
    return np.stack([r * np.cos(a), r * np.sin(a)], 1)


def _star() -> np.ndarray:
    outer = _regular(5, 1.0)
    inner = _regular(5, 0.42, -math.pi / 2 + math.pi / 5)
    return np.stack([outer, inner], 1).reshape(-1, 2)


def _cross() -> np.ndarray:
    w = 0.33
    return np.array(
        [[-w, -1], [w, -1], [w, -w], [1, -w], [1, w], [w, w], [w, 1], [-w, 1], [-w, w], [-1, w], [-1, -w], [-w, -w]],
        dtype=np.float64,
    )


def _heart() -> np.ndarray:
    t = np.linspace(0, 2 * math.pi, 60, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    p = np.stack([x, y], 1)
    p -= (p.max(0) + p.min(0)) / 2
    return p / np.abs(p).max()


def _arrow() -> np.ndarray:
    return np.array(
        [[-1, -0.28], [0.15, -0.28], [0.15, -0.75], [1, 0], [0.15, 0.75], [0.15, 0.28], [-1, 0.28]], dtype=np.float64
    )


def _bolt() -> np.ndarray:
    return np.array(
        [[0.15, -1], [-0.55, 0.12], [-0.05, 0.12], [-0.3, 1], [0.55, -0.2], [0.05, -0.2], [0.35, -1]], dtype=np.float64
    )


_POLYS = {
    "square": lambda: _regular(4, 1.0, math.pi / 4) / math.sqrt(2) * 1.0,
    "triangle": lambda: _regular(3, 1.0) + np.array([0, 0.2]),
    "star": _star,
    "cross": _cross,
    "heart": _heart,
    "arrow": _arrow,
    "bolt": _bolt,
}


def _shape_mask(name: str, size: int, cx: float, cy: float, r: float, angle: float, rng) -> np.ndarray:
    """Antialiased coverage in [0,1] of one shape, float32 [size,size]."""
    S = size * _SS
    canvas = np.zeros((S, S), np.uint8)
    c = np.array([cx, cy]) * _SS
    R = r * _SS
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])

    def poly(p):
        q = (p @ rot.T) * R + c
        cv2.fillPoly(canvas, [np.round(q * 16).astype(np.int32)], 255, lineType=cv2.LINE_8, shift=4)

    if name == "circle":
        cv2.circle(canvas, (int(c[0] * 16), int(c[1] * 16)), int(R * 16), 255, -1, shift=4)
    elif name == "ring":
        cv2.circle(canvas, (int(c[0] * 16), int(c[1] * 16)), int(R * 16), 255, -1, shift=4)
        cv2.circle(canvas, (int(c[0] * 16), int(c[1] * 16)), int(R * rng.uniform(0.5, 0.62) * 16), 0, -1, shift=4)
    elif name == "crescent":
        cv2.circle(canvas, (int(c[0] * 16), int(c[1] * 16)), int(R * 16), 255, -1, shift=4)
        off = rot @ np.array([0.45, -0.1]) * R
        cv2.circle(canvas, (int((c[0] + off[0]) * 16), int((c[1] + off[1]) * 16)), int(R * 0.85 * 16), 0, -1, shift=4)
    else:
        poly(_POLYS[name]())
    return cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


# --------------------------------------------------------------------------------------
# textures
# --------------------------------------------------------------------------------------
def _rand_colour(rng, sat=(0.0, 0.6), val=(0.25, 0.95)) -> np.ndarray:
    h = rng.uniform(0, 180)
    s = rng.uniform(*sat) * 255
    v = rng.uniform(*val) * 255
    hsv = np.array([[[h, s, v]]], np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _texture(name: str, size: int, rng) -> np.ndarray:
    """Float32 [H,W,3] in 0..255."""
    c1 = _rand_colour(rng)
    c2 = _rand_colour(rng)
    while np.abs(c1 - c2).sum() < 90:
        c2 = _rand_colour(rng)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    th = rng.uniform(0, math.pi)
    u = xx * math.cos(th) + yy * math.sin(th)
    v = -xx * math.sin(th) + yy * math.cos(th)
    if name == "stripes":
        period = rng.uniform(5, 12)
        t = ((u / period + rng.uniform()) % 1.0) < rng.uniform(0.35, 0.65)
    elif name == "dots":
        period = rng.uniform(6, 11)
        rad = period * rng.uniform(0.18, 0.32)
        du = (u + rng.uniform(0, period)) % period - period / 2
        dv = (v + rng.uniform(0, period)) % period - period / 2
        t = du**2 + dv**2 < rad**2
    elif name == "checkers":
        period = rng.uniform(5, 11)
        t = ((np.floor(u / period) + np.floor(v / period)) % 2) == 0
    elif name == "noise":
        g = rng.integers(4, 10)
        small = rng.uniform(0, 1, (g, g)).astype(np.float32)
        f = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
        f += rng.normal(0, 0.15, (size, size)).astype(np.float32)
        f = np.clip(f, 0, 1)[..., None]
        return c1 * f + c2 * (1 - f)
    elif name == "gradient":
        f = (u - u.min()) / max(float(u.max() - u.min()), 1e-6)
        f = f[..., None]
        return c1 * f + c2 * (1 - f)
    elif name == "grid":
        period = rng.uniform(6, 12)
        lw = rng.uniform(1.0, 2.0)
        t = (((u + rng.uniform(0, period)) % period) < lw) | (((v + rng.uniform(0, period)) % period) < lw)
    elif name == "waves":
        period = rng.uniform(6, 12)
        amp = rng.uniform(2, 5)
        wl = rng.uniform(12, 30)
        t = (((u + amp * np.sin(2 * math.pi * v / wl)) / period) % 1.0) < 0.5
    elif name == "bricks":
        bh = rng.uniform(5, 9)
        bw = bh * rng.uniform(1.8, 2.6)
        lw = 1.2
        row = np.floor(yy / bh)
        xs = xx + (row % 2) * bw / 2
        t = ((yy % bh) < lw) | ((xs % bw) < lw)  # mortar
    else:
        raise ValueError(name)
    t = t.astype(np.float32)[..., None]
    return c1 * t + c2 * (1 - t)


# --------------------------------------------------------------------------------------
# scenes
# --------------------------------------------------------------------------------------
def _rng_of(seed_seq_or_int) -> np.random.Generator:
    if isinstance(seed_seq_or_int, np.random.SeedSequence):
        return np.random.default_rng(seed_seq_or_int)
    if isinstance(seed_seq_or_int, np.random.Generator):
        return seed_seq_or_int
    return np.random.default_rng(np.random.SeedSequence(int(seed_seq_or_int)))


def _object_colour(rng, bg: np.ndarray) -> np.ndarray:
    bg_mean = bg.reshape(-1, 3).mean(0)
    best, best_d = None, -1.0
    for _ in range(6):
        c = _rand_colour(rng, sat=(0.35, 1.0), val=(0.35, 1.0))
        if rng.uniform() < 0.12:  # some achromatic objects
            c = np.full(3, rng.choice([25.0, 240.0]), np.float32)
        d = float(np.abs(c - bg_mean).sum())
        if d > 150:
            return c
        if d > best_d:
            best, best_d = c, d
    return best


def ignore_band(label: np.ndarray, width: int = 1) -> np.ndarray:
    """Bool mask of pixels within ``width`` px of a label change (a ~2*width px band)."""
    k = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    lab = label.astype(np.uint8)
    return cv2.dilate(lab, k) != cv2.erode(lab, k)


def render_scene(
    seed_seq_or_int,
    size: int = DEFAULT_SIZE,
    num_objects: int | None = None,
    texture: str | None = None,
) -> dict:
    """Render one scene.

    Returns {"image": uint8 [H,W,3] RGB, "target": int64 [H,W] (0 bg, 1..C, 255 ignore),
    "objects": [(class_id 1..C, visible bool mask [H,W]), ...] in drawing order, "texture": str}.
    ``num_objects`` (default: random 1..4, weighted towards 2-3) and ``texture`` can be forced.
    """
    rng = _rng_of(seed_seq_or_int)
    tex = texture if texture is not None else TEXTURES[rng.integers(len(TEXTURES))]
    img = _texture(tex, size, rng)
    # mild global jitter of the background
    img = img * rng.uniform(0.85, 1.1) + rng.normal(0, 3, img.shape).astype(np.float32)
    n = num_objects if num_objects is not None else int(rng.choice([1, 2, 3, 4], p=[0.2, 0.35, 0.3, 0.15]))
    label = np.zeros((size, size), np.int64)
    owner = np.full((size, size), -1, np.int64)  # which object covers each pixel
    drawn: list[tuple[int, np.ndarray]] = []
    s = size / 64.0
    placed: list[tuple[float, float, float]] = []
    for k in range(n):
        cls = int(rng.integers(NUM_CLASSES)) + 1
        for _attempt in range(20):
            r = rng.uniform(8.0, 16.0) * s
            cx = rng.uniform(r * 0.7, size - r * 0.7)
            cy = rng.uniform(r * 0.7, size - r * 0.7)
            # allow partial overlap but not near-total occlusion
            if all(math.hypot(cx - px, cy - py) > 0.75 * max(r, pr) for px, py, pr in placed):
                break
        placed.append((cx, cy, r))
        cov = _shape_mask(CLASSES[cls - 1], size, cx, cy, r, rng.uniform(0, 2 * math.pi), rng)
        colour = _object_colour(rng, img)
        shade = 1.0 + rng.uniform(-0.15, 0.15) * ((np.mgrid[0:size, 0:size][1] - cx) / (r + 1e-6))
        obj = np.clip(colour[None, None, :] * shade[..., None], 0, 255)
        a = cov[..., None]
        img = img * (1 - a) + obj * a
        m = cov > 0.5
        label[m] = cls
        owner[m] = k
        drawn.append((cls, m))
    objects = []
    for k, (cls, _m) in enumerate(drawn):
        vis = owner == k
        if vis.sum() > 0:
            objects.append((cls, vis))
    band = ignore_band(owner + 1, 1)
    target = label.copy()
    target[band] = IGNORE_INDEX
    image = np.clip(np.round(img), 0, 255).astype(np.uint8)
    return {"image": image, "target": target, "objects": objects, "texture": tex}


def scene_seed(split: str, index: int, seed: int = 0) -> np.random.SeedSequence:
    return np.random.SeedSequence([int(seed), SPLIT_IDS[split], int(index)])


class ShapesDataset(Dataset):
    """Fixed-size split of procedurally rendered scenes (rendered on access, deterministic)."""

    def __init__(self, split: str = "val", num_images: int = 200, size: int = DEFAULT_SIZE, seed: int = 0,
                 limit: int | None = None):
        if split not in SPLIT_IDS:
            raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLIT_IDS)}")
        self.split = split
        self.num_images = int(num_images) if limit is None else min(int(num_images), int(limit))
        self.size = int(size)
        self.seed = int(seed)
        self.classes = list(CLASSES)
        self.textures = list(TEXTURES)

    def __len__(self) -> int:
        return self.num_images

    def scene(self, i: int) -> dict:
        if not 0 <= i < self.num_images:
            raise IndexError(i)
        return render_scene(scene_seed(self.split, i, self.seed), self.size)

    def __getitem__(self, i: int) -> dict:
        sc = self.scene(i)
        return {"image": sc["image"], "target": sc["target"], "image_id": f"shapes_{self.split}_{i:05d}"}
