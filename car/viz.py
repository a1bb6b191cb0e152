"""Overlay pictures: image | ground truth | prediction, with a class legend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def palette(n: int = 256) -> np.ndarray:
    """The Pascal VOC colour map (bit-interleaved), [n, 3] uint8; index 255 (ignore) is white."""
    cmap = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    cmap[255] = (255, 255, 255)
    return cmap


def colorize(labels: np.ndarray) -> np.ndarray:
    return palette()[np.clip(labels, 0, 255).astype(np.uint8)]


def overlay(image: np.ndarray, target: np.ndarray, pred: np.ndarray, class_names: list[str]) -> Image.Image:
    """A single PNG-ready picture: three panels side by side and a legend of the classes shown."""
    h, w = image.shape[:2]
    panels = [image, (0.4 * image + 0.6 * colorize(target)).astype(np.uint8),
              (0.4 * image + 0.6 * colorize(pred)).astype(np.uint8)]
    present = sorted(set(np.unique(target).tolist()) | set(np.unique(pred).tolist()) - {255})
    present = [c for c in present if c != 255]
    legend_h = 14 * (len(present) + 1) + 4
    canvas = Image.new("RGB", (3 * w, h + legend_h), "white")
    for i, panel in enumerate(panels):
        canvas.paste(Image.fromarray(panel), (i * w, 0))
    draw = ImageDraw.Draw(canvas)
    for i, title in enumerate(["image", "ground truth", "prediction"]):
        draw.text((i * w + 3, 2), title, fill=(255, 255, 255))
    colours = palette()
    for row, c in enumerate(present):
        y = h + 4 + 14 * row
        draw.rectangle([4, y, 14, y + 10], fill=tuple(int(v) for v in colours[c]))
        name = class_names[c] if c < len(class_names) else str(c)
        draw.text((20, y), f"{c}: {name}", fill=(0, 0, 0))
    return canvas


def save_overlays(examples: list[dict], class_names: list[str], out_dir: str | Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ex in examples:
        path = out_dir / f"{ex['image_id']}.png"
        overlay(ex["image"], ex["target"], ex["pred"], class_names).save(path)
        paths.append(path)
    return paths
