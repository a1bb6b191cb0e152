"""The images and classes the speed benchmark runs, for our code and the official code alike.

* `voc20`: VOC 2007_000129 (500x334) at its own size, the 20 VOC query strings of
  conf/dataset/voc.yaml, the official VOC settings (the workload of a VOC evaluation);
* `small`: VOC 2007_000032 shrunk to a 224-px long side (PIL bicubic, as the official runner's
  --long_side 224 does), 4 classes (those of the golden case c1), the official VOC settings.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CAR_SHARED_DATA") or REPO.parent / "shared" / "data")  # as tests/conftest.py
JPEGS = SHARED / "VOCdevkit" / "VOC2012" / "JPEGImages"
VOC_QUERIES = ["aeroplane", "bicycle", "bird avian", "boat", "bottle", "bus", "car", "cat", "chair seat", "cow",
               "diningtable", "dog", "horse", "motorbike", "person with clothes,people,human", "pottedplant",
               "sheep", "sofa", "train", "tvmonitor screen"]

CASES = {
    "voc20": {"dataset": "voc", "image": JPEGS / "2007_000129.jpg", "long_side": 0, "queries": None,
              "oracle_classes": VOC_QUERIES, "describe": "VOC 2007_000129 at its own size, 20 VOC query strings"},
    "small": {"dataset": "voc", "image": JPEGS / "2007_000032.jpg", "long_side": 224,
              "queries": ["aeroplane", "person", "dog", "car"], "oracle_classes": ["aeroplane", "person", "dog", "car"],
              "describe": "VOC 2007_000032 at a 224-px long side, 4 classes"},
}


def resize_long_side(image: np.ndarray, long_side: int) -> np.ndarray:
    """The official runner's --long_side: PIL bicubic to max(H, W) == long_side (0: unchanged)."""
    from PIL import Image

    h, w = image.shape[:2]
    if long_side <= 0 or max(h, w) == long_side:
        return image
    s = long_side / float(max(h, w))
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return np.asarray(Image.fromarray(image).resize(size, Image.BICUBIC))


def case_image(name: str, read) -> np.ndarray:
    """The case's image as CaR receives it: `read` (the dataset loader's reader), then the resize."""
    case = CASES[name]
    return resize_long_side(read(case["image"]), case["long_side"])
