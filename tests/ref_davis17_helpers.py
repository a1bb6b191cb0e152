"""Shared by the Ref-DAVIS17 tests: a format-exact DAVIS-2017 tree with the four expression files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

H, W = 24, 32
PALETTE = [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0] + [0] * (252 * 3 - 12) + [224, 224, 192]
FILES = {"annot1": ("Davis17_annot1.txt", "utf-8"), "annot1_full_video": ("Davis17_annot1_full_video.txt", "utf-8"),
         "annot2": ("Davis17_annot2.txt", "latin-1"), "annot2_full_video": ("Davis17_annot2_full_video.txt", "latin-1")}


def annotation(t: int, objects: int) -> np.ndarray:
    """[H, W] uint8: objects 1..objects as bars moving right with t, a void (255) bottom row."""
    ids = np.zeros((H, W), np.uint8)
    for k in range(1, objects + 1):
        ids[2 + 6 * (k - 1):6 + 6 * (k - 1), 3 + t:10 + t] = k
    ids[-1, :] = 255
    return ids


def save_png(path: Path, ids: np.ndarray) -> None:
    """A palette PNG whose indices are the ids (as DAVIS stores its annotations)."""
    image = Image.fromarray(ids, mode="P")
    image.putpalette(PALETTE + [0] * (768 - len(PALETTE)))
    image.save(path)


def write_expressions(root: Path, expression_set: str, lines: list[str]) -> Path:
    name, encoding = FILES[expression_set]
    path = root / "davis_text_annotations" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def make_tree(root: Path, videos: dict[str, tuple[int, int]], val: list[str], train: list[str],
              lines: dict[str, list[str]]) -> Path:
    """<root>/DAVIS (JPEGImages, Annotations_unsupervised, ImageSets/2017) and <root>/davis_text_annotations.
    videos: name -> (frames, objects)."""
    davis = root / "DAVIS"
    (davis / "ImageSets" / "2017").mkdir(parents=True)
    (davis / "ImageSets" / "2017" / "val.txt").write_text("\n".join(val) + "\n")
    (davis / "ImageSets" / "2017" / "train.txt").write_text("\n".join(train) + "\n")
    rng = np.random.default_rng(0)
    for video, (frames, objects) in videos.items():
        for folder in ("JPEGImages", "Annotations_unsupervised"):
            (davis / folder / "480p" / video).mkdir(parents=True)
        for t in range(frames):
            Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(
                davis / "JPEGImages" / "480p" / video / f"{t:05d}.jpg", quality=95)
            save_png(davis / "Annotations_unsupervised" / "480p" / video / f"{t:05d}.png", annotation(t, objects))
    for expression_set, set_lines in lines.items():
        write_expressions(root, expression_set, set_lines)
    return root
