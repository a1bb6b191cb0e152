"""The pixel budget: the largest image CaR runs on at its own size (`car.max_pixels`).

CaR runs the proposal CLIP on the patch grid of the whole image: with N patches, every attention
map and the affinity are [N, N], and the batched gradCAM backward holds one [heads, N, N] map
per query of a chunk, so memory grows with the square of the pixel count. Measured on a
random-init ViT-B/16 on CPU (one proposal pass, 3:2 image, peak RSS above the loaded model;
`python benchmarks/bench_pixel_budget.py`):

    pixels     patches  chunk_size=1   2        4        16                   s (2 cores)
    409,600      1,617    0.9 GB      1.2 GB   2.0 GB    6.3 GB               23-88
    1,000,000    3,927    3.6 GB      5.8 GB  10.1 GB   ~36 GB (extrapolated)  110-125

A 6000x4000 photo has 93,750 patches: about 570 times the 1 MP figures (terabytes). The paper's
datasets stop at 640x640 = 409,600 px, so the default budget (1,000,000 px) never touches them;
lower car.chunk_size where a budget-sized image does not fit.

Memory follows the patch count, so car.max_pixels is stated for 16-px patches (CaR's ViT-B/16
proposal CLIP) and a proposal CLIP with p-px patches gets max_pixels * p^2 / 256 pixels, the
same patch count: 250,000 px for the tiny CLIP (8-px patches), 765,625 px for a /14 model.

    budget = PixelBudget(max_pixels=1_000_000, resize=True, patch_size=16)
    small = budget.fit(image, "img_1")          # [H, W, 3] -> [h, w, 3], h*w <= max_pixels
    pred = budget.restore(small_pred, (H, W))   # [h, w] -> [H, W], nearest

Images within the budget pass through untouched (the same array). With resize=False an image
above the budget is a one-sentence `CarError` (a counted skip under on_bad_sample=skip) instead
of an allocation failure deep inside CLIP. The segmenters (car/methods/car/segmenter.py) call this on
every image, so every entry point gets the same rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from car.errors import CarError

DEFAULT_MAX_PIXELS = 1_000_000
REFERENCE_PATCH = 16  # car.max_pixels is stated for 16-px patches


@dataclass(frozen=True)
class PixelBudget:
    max_pixels: int = DEFAULT_MAX_PIXELS  # car.max_pixels, at 16-px patches
    resize: bool = True  # False: an image above the budget is an error
    patch_size: int = REFERENCE_PATCH  # the proposal CLIP's

    @property
    def limit(self) -> int:
        """Pixels allowed at this patch size: as many patches as max_pixels gives at 16-px patches."""
        return max(1, self.max_pixels * self.patch_size**2 // REFERENCE_PATCH**2)

    def size_for(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) CaR runs at: the size itself within the budget, else the aspect kept, h*w <= limit."""
        if height * width <= self.limit:
            return height, width
        scale = math.sqrt(self.limit / (height * width))
        h, w = max(1, int(height * scale)), max(1, int(width * scale))
        while h * w > self.limit:  # float rounding: take one row or column off the longer side
            h, w = (h - 1, w) if h >= w else (h, w - 1)
        return h, w

    def check(self, image: np.ndarray, name: str | None = None) -> None:
        """Raise `CarError` if `image` [H, W, ...] is above the budget and resizing is off."""
        height, width = image.shape[:2]
        if self.resize or height * width <= self.limit:
            return
        what = f"Image {name}" if name else "The image"
        scaled = "" if self.limit == self.max_pixels else \
            f", which is {self.limit:,} pixels for this proposal CLIP's {self.patch_size}-px patches"
        raise CarError(f"{what} is {width}x{height} = {height * width:,} pixels, above car.max_pixels="
                       f"{self.max_pixels:,}{scaled}, and car.resize_large=false: set car.resize_large=true to run "
                       f"CaR on a shrunk copy, or raise car.max_pixels if memory allows (it grows with the square "
                       f"of the pixel count).")

    def check_sample(self, sample: dict) -> None:
        """`check` on a dataset sample (run by the data guard, so that on_bad_sample=skip can skip it)."""
        self.check(sample["image"], sample.get("image_id"))

    def fit(self, image: np.ndarray, name: str | None = None) -> np.ndarray:
        """uint8 [H, W, 3] -> [h, w, 3] within the budget (antialiased bicubic); the same array if it fits."""
        self.check(image, name)
        height, width = image.shape[:2]
        h, w = self.size_for(height, width)
        if (h, w) == (height, width):
            return image
        return np.asarray(Image.fromarray(image).resize((w, h), Image.BICUBIC, reducing_gap=3.0))

    @staticmethod
    def restore(pred: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """Label map or binary mask [h, w] -> [H, W] by nearest neighbour (pixel centres); no copy if equal."""
        height, width = size
        h, w = pred.shape[:2]
        if (h, w) == (height, width):
            return pred
        rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.int64), h - 1)  # [H]
        cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.int64), w - 1)  # [W]
        return pred[rows[:, None], cols[None, :]]  # [H, W]

    def record(self, image: np.ndarray) -> dict:
        """What metrics.json notes for the image: {"resized_from": [H, W], "resized_to": [h, w]} or {}."""
        size = tuple(image.shape[:2])
        fitted = self.size_for(*size)
        return {} if fitted == size else {"resized_from": list(size), "resized_to": list(fitted)}
