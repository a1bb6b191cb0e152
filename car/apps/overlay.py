"""The overlay picture of a segmentation: the masks painted over the image, each phrase's name on its region
(car-segment writes it for images and, frame by frame, for videos)."""

from __future__ import annotations

import numpy as np

from car.api import Segmentation

OVERLAY_MAX_PIXELS = 4_000_000  # the overlay PNG of a larger photo is drawn on a shrunk copy (masks stay full size)


def overlay_image(result: Segmentation, max_pixels: int = OVERLAY_MAX_PIXELS) -> np.ndarray:
    """[h, w, 3] uint8: the masks painted over the image with each phrase's name on its region; a
    small image is enlarged (nearest) and a very large one shrunk so that the names stay readable."""
    from PIL import Image

    from car.reporting.viz import enlarge, overlay_labels, palette_for, upscale_factor

    names = ["background"] + list(result.texts)
    image, labels = result.image, result.label_map
    h, w = labels.shape
    if h * w > max_pixels:
        scale = (max_pixels / (h * w)) ** 0.5
        size = (max(1, int(w * scale)), max(1, int(h * scale)))
        image = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR, reducing_gap=3.0))
        rows = np.minimum(((np.arange(size[1]) + 0.5) * h / size[1]).astype(np.int64), h - 1)
        cols = np.minimum(((np.arange(size[0]) + 0.5) * w / size[0]).astype(np.int64), w - 1)
        labels = labels[rows[:, None], cols[None, :]]
    else:
        k = upscale_factor(h, w)
        image, labels = enlarge(image, k), enlarge(labels, k)
    return overlay_labels(image, labels, names, palette_for(names))
