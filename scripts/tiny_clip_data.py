"""Training data of the tiny CLIP: procedural scenes, visual prompts and deterministic batches.

Used by scripts/train_tiny_clip.py. The visual prompts follow CaR's definitions (red 1-px ellipse,
15x15 sigma 2.6 Gaussian blur outside the mask, grey or black outside); batch `step` of a run is
rendered from SeedSequence([seed, 0, step * batch_size + j]), so every batch is reproducible and
independent of the number of data workers.
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD  # noqa: E402

from car.data.shapes import CLASSES, TEXTURES, render_scene  # noqa: E402

LABELS = list(CLASSES) + list(TEXTURES)  # class k -> index k-1; texture t -> C + t
C = len(CLASSES)
PROMPT_TYPES = ["circle_blur", "circle", "blur", "gray", "black", "circle_gray"]
PROMPT_PROBS = [0.35, 0.15, 0.2, 0.1, 0.1, 0.1]
MEAN = np.array(OPENAI_DATASET_MEAN, np.float32)
STD = np.array(OPENAI_DATASET_STD, np.float32)


# --------------------------------------------------------------------------------------
# visual prompts (same definitions as CaR: red 1-px ellipse, 15x15 sigma 2.6 blur outside)
# --------------------------------------------------------------------------------------
def ellipse_params(mask: np.ndarray):
    ys, xs = np.nonzero(mask)
    cx, cy = float(xs.mean()), float(ys.mean())
    ax = max(1, int(round((xs.max() - xs.min() + 1) / 2)))
    ay = max(1, int(round((ys.max() - ys.min() + 1) / 2)))
    return (int(round(cx)), int(round(cy))), (ax, ay)


def apply_prompt(image: np.ndarray, mask: np.ndarray, kind: str) -> np.ndarray:
    img = image.copy()
    m = mask[..., None]
    if "blur" in kind:
        img = np.where(m, img, cv2.GaussianBlur(image, (15, 15), 2.6))
    if "gray" in kind:
        g = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None].repeat(3, 2)
        img = np.where(m, img, g)
    if kind == "black":
        img = np.where(m, img, 0).astype(np.uint8)
    if "circle" in kind:
        img = np.ascontiguousarray(img)
        centre, axes = ellipse_params(mask)
        cv2.ellipse(img, centre, axes, 0, 0, 360, (255, 0, 0), 1)
    return img


def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    a = (np.stack(images).astype(np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(a).permute(0, 3, 1, 2).contiguous()


# --------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------
def make_batch(seed: int, step: int, batch_size: int, size: int, bg_prompt_p: float = 0.15):
    """Deterministic batch for a step: raw scenes + one visually prompted copy of each."""
    raw, multi, prompted, ptarget = [], [], [], []
    for j in range(batch_size):
        ss = np.random.SeedSequence([seed, 0, step * batch_size + j])
        scene_ss, aug_ss = ss.spawn(2)
        sc = render_scene(scene_ss, size)
        rng = np.random.default_rng(aug_ss)
        y = np.zeros(len(LABELS), np.float32)
        for cls, _m in sc["objects"]:
            y[cls - 1] = 1.0
        y[C + TEXTURES.index(sc["texture"])] = 1.0
        raw.append(sc["image"])
        multi.append(y)
        objs = [(c, m) for c, m in sc["objects"] if m.sum() >= 12]
        bg = sc["target"] == 0
        if not objs or (rng.uniform() < bg_prompt_p and bg.sum() >= 12):
            mask, t = bg, C + TEXTURES.index(sc["texture"])
        else:
            cls, mask = objs[rng.integers(len(objs))]
            t = cls - 1
        kind = PROMPT_TYPES[rng.choice(len(PROMPT_TYPES), p=PROMPT_PROBS)]
        prompted.append(apply_prompt(sc["image"], mask, kind))
        ptarget.append(t)
    return to_tensor(raw), torch.from_numpy(np.stack(multi)), to_tensor(prompted), torch.tensor(ptarget)


def token_labels(target: np.ndarray, texture: str, grid: int) -> np.ndarray:
    """Per-token labels of a scene for the dense loss: [grid*grid] int64 (row-major), the class
    index (0..C-1) or C + texture index for background, where one label covers more than half of
    the token's cell; -100 (ignored) for mixed cells and the 255 border band."""
    cell = target.shape[0] // grid
    out = np.full((grid, grid), -100, np.int64)
    for i in range(grid):
        for j in range(grid):
            values, counts = np.unique(target[i * cell:(i + 1) * cell, j * cell:(j + 1) * cell], return_counts=True)
            k = int(counts.argmax())
            if values[k] != 255 and counts[k] > 0.5 * cell * cell:
                out[i, j] = C + TEXTURES.index(texture) if values[k] == 0 else values[k] - 1
    return out.ravel()


def background_disc(target: np.ndarray, rng, tries: int = 10) -> np.ndarray | None:
    """A disc-shaped mask (radius 6-20 px) lying on background: at most 15 % of it covers objects
    or their border band. It stands for the proposal of a query that is absent from the image,
    which CaR's classifier must score as background (a texture word), not as a class. None if no
    placement is found."""
    h, w = target.shape
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(tries):
        r = rng.uniform(6.0, 20.0)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        disc = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        if disc.sum() >= 12 and (target[disc] != 0).mean() <= 0.15:
            return disc
    return None


def loose_disc(mask: np.ndarray, rng) -> np.ndarray:
    """A disc around an object, loose like CaR's proposal masks (a present class's mask covers about
    20 % of a shapes image, its object 4 %): centred near the object's centroid, radius 1-2x the
    object's equivalent radius, so it often takes in background and parts of neighbours; it always
    holds the object, whose label it keeps."""
    ys, xs = np.nonzero(mask)
    r0 = max(2.0, float(np.sqrt(len(xs) / np.pi)))
    r = r0 * rng.uniform(1.0, 2.0)
    cx, cy = xs.mean() + rng.normal(0, 0.25 * r0), ys.mean() + rng.normal(0, 0.25 * r0)
    yy, xx = np.mgrid[0:mask.shape[0], 0:mask.shape[1]]
    return ((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r) | mask


def make_batch_ce(seed: int, step: int, batch_size: int, size: int, grid: int | None = None,
                  neg_prompt_p: float = 0.0, loose_prompt_p: float = 0.0):
    """The "ce" objective's batch: single-object scenes (class + texture labels), prompted
    objects of multi-object scenes (class label), and those multi-object scenes themselves with
    per-token labels on a grid x grid token map (for the optional dense loss). One-of-K labels
    give a much denser signal than multi-label scenes (see car/assets/tiny_clip.md).
    With neg_prompt_p > 0 that share of the prompted images prompts a background disc instead
    (`background_disc`) and is labelled with the scene's texture, index C + t: the prompted
    loss then runs over class + texture words, as CaR's classifier scores queries against its
    background words. With loose_prompt_p > 0 that share of the object prompts uses a loose disc
    around the object (`loose_disc`) instead of its exact mask. Both at 0 draw exactly the
    batches of earlier runs."""
    single, ycls, ytex, prompted, ptarget, multi, tokens = [], [], [], [], [], [], []
    for j in range(batch_size):
        ss = np.random.SeedSequence([seed, 0, step * batch_size + j])
        s1, s2, aug = ss.spawn(3)
        sc = render_scene(s1, size, num_objects=1)
        single.append(sc["image"])
        ycls.append(sc["objects"][0][0] - 1)
        ytex.append(TEXTURES.index(sc["texture"]))
        sc = render_scene(s2, size)
        rng = np.random.default_rng(aug)
        objs = [(c, m) for c, m in sc["objects"] if m.sum() >= 12] or sc["objects"]
        cls, mask = objs[rng.integers(len(objs))]
        kind = PROMPT_TYPES[rng.choice(len(PROMPT_TYPES), p=PROMPT_PROBS)]
        label = cls - 1
        if loose_prompt_p > 0 and rng.uniform() < loose_prompt_p:
            mask = loose_disc(mask, rng)
        if neg_prompt_p > 0 and rng.uniform() < neg_prompt_p:
            disc = background_disc(sc["target"], rng)
            if disc is not None:
                mask, label = disc, C + TEXTURES.index(sc["texture"])
        prompted.append(apply_prompt(sc["image"], mask, kind))
        ptarget.append(label)
        multi.append(sc["image"])
        tokens.append(token_labels(sc["target"], sc["texture"], grid or size // 8))  # the tiny ViT's patch is 8
    return (to_tensor(single), torch.tensor(ycls), torch.tensor(ytex), to_tensor(prompted), torch.tensor(ptarget),
            to_tensor(multi), torch.from_numpy(np.stack(tokens)))


def batch_maker(objective: str, neg_prompt_p: float = 0.0, loose_prompt_p: float = 0.0):
    """The batch function of an objective: (seed, step, batch_size, size) -> batch tensors."""
    if objective == "ce":
        return partial(make_batch_ce, neg_prompt_p=neg_prompt_p, loose_prompt_p=loose_prompt_p)
    return make_batch


class BatchStream(torch.utils.data.Dataset):
    """Batches start..steps-1 of a run, made by `make` (a `batch_maker`) in data-loader workers."""

    def __init__(self, seed, steps, batch_size, size, make, start=0):
        self.seed, self.steps, self.batch_size, self.size, self.start = seed, steps, batch_size, size, start
        self.make = make

    def __len__(self):
        return self.steps - self.start

    def __getitem__(self, i):
        return self.make(self.seed, self.start + i, self.batch_size, self.size)
