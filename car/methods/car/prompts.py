"""Visual prompts: draw a proposal into the image so the classifier looks at it (CAR_SPEC §4).

    VisualPrompt(["circle", "blur"], eta)(image [H, W, 3] uint8, soft map [H, W]) -> [H, W, 3] uint8

Prompt types are applied in the fixed order of PROMPT_ORDER, each on the previous one's output,
whatever order the config lists them in.
"""

from __future__ import annotations

import cv2
import numpy as np

from car.settings.enums import PROMPT_ORDER

RED = (255, 0, 0)  # images are RGB; the config's `color` key is ignored, as officially (Q12)


def _centre_and_axes(mask: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]]:
    """Centroid (int-truncated mean col, row) and semi-axes (⌊w/2⌋, ⌊h/2⌋) of the mask's extent."""
    rows, cols = np.nonzero(mask)
    centre = (int(cols.mean()), int(rows.mean()))
    axes = ((int(cols.max()) - int(cols.min()) + 1) // 2, (int(rows.max()) - int(rows.min()) + 1) // 2)
    return centre, axes


# OpenCV's fixed-point BGR->grey weights: 0.114, 0.587, 0.299 scaled by 2^15 (they sum to 2^15),
# rounded by adding 2^14 before the shift. The golden official run (OpenCV 4.14) and OpenCV 5 both
# compute exactly this; written out so no OpenCV build can change it.
GRAY_WEIGHTS_BGR = (3735, 19235, 9798)
GRAY_SHIFT = 15


def _gray(image: np.ndarray, weights: str) -> np.ndarray:
    """Grey value per pixel, computed as OpenCV's fixed-point cvtColor(BGR2GRAY).

    "official" (quirk Q11) converts the RGB array as if it were BGR, so red gets blue's weight;
    "rgb" gives each channel its own weight. [H, W, 3] uint8 -> [H, W] uint8.
    """
    b, g, r = GRAY_WEIGHTS_BGR
    w0, w1, w2 = (b, g, r) if weights == "official" else (r, g, b)
    c = image.astype(np.int32)
    y = (c[..., 0] * w0 + c[..., 1] * w1 + c[..., 2] * w2 + (1 << (GRAY_SHIFT - 1))) >> GRAY_SHIFT
    return y.astype(np.uint8)


class VisualPrompt:
    """Builds the prompted image for one proposal map.

    Args:
        types: subset of PROMPT_ORDER (e.g. ["circle", "blur"]); [] gives the plain image.
        eta: η, the map is binarised as B = map > η (strict) only to build the prompt.
        gray_weights: "official" (quirk Q11) or "rgb".
    """

    def __init__(self, types, eta: float, gray_weights: str = "official"):
        unknown = set(types) - set(PROMPT_ORDER)
        if unknown:
            raise ValueError(f"Unknown visual prompt type(s) {sorted(unknown)}; choose from {PROMPT_ORDER}.")
        self.types = [t for t in PROMPT_ORDER if t in set(types)]
        self.eta = float(eta)
        self.gray_weights = gray_weights

    def with_types(self, types) -> VisualPrompt:
        return VisualPrompt(types, self.eta, self.gray_weights)

    def __call__(self, image: np.ndarray, soft_map: np.ndarray) -> np.ndarray:
        if soft_map.sum() <= 1:  # §4.1: nothing proposed -> the untouched image
            return image
        mask = soft_map > self.eta  # [H, W] bool
        if not mask.any():  # Q10: official crashes on a NaN centroid; use the unprompted image
            return image
        out = image.copy()
        keep = mask[..., None]
        for kind in self.types:
            if kind == "blur":
                blurred = cv2.GaussianBlur(out, (15, 15), 0, borderType=cv2.BORDER_REFLECT_101)
                out = np.where(keep, out, blurred)
            elif kind == "gray":
                gray = _gray(out, self.gray_weights)[..., None].repeat(3, axis=2)
                out = np.where(keep, out, gray)
            elif kind == "black":
                out = np.where(keep, out, 0).astype(np.uint8)
            elif kind == "circle":
                centre, axes = _centre_and_axes(mask)
                out = np.ascontiguousarray(out)
                cv2.ellipse(out, centre, axes, 0, 0, 360, RED, thickness=1, lineType=cv2.LINE_8)
            elif kind == "rectangle":
                (cx, cy), (ax, ay) = _centre_and_axes(mask)
                out = np.ascontiguousarray(out)
                cv2.rectangle(out, (cx - ax, cy - ay), (cx + ax, cy + ay), RED, thickness=1, lineType=cv2.LINE_8)
            elif kind == "contour":
                filled = _fill_holes(mask)
                contours, _ = cv2.findContours(filled, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
                out = np.ascontiguousarray(out)
                cv2.drawContours(out, contours, -1, RED, thickness=1, lineType=cv2.LINE_8)
        return out

    def batch(self, image: np.ndarray, maps: np.ndarray) -> list[np.ndarray]:
        """maps [K, H, W] -> K prompted images [H, W, 3]."""
        return [self(image, m) for m in maps]


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Binary mask with interior holes filled (outer contours drawn filled)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros(mask.shape, dtype=np.uint8)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled
