"""Video predictions in DAVIS layout, so that the official toolkit (or `python -m car.metrics.davis`)
can re-score a run:

    <run dir>/davis/<expression set>/<video>/<frame>.png     palette PNG, pixel value = object id, 0 background

(the toolkit's `--results_path` is `<run dir>/davis/<expression set>`). The PNGs use the DAVIS /
Pascal VOC colour map. Each video is written into a hidden temporary folder and renamed into place
when all its frames are written, so a killed run leaves whole videos only.

A dataset with no DAVIS tree on disk (shapes_video, generated from a seed) also gets its ground
truth written as one (`ground_truth_root`, `dataset.video.write_ground_truth`):

    <run dir>/davis_root/Annotations_unsupervised/480p/<video>/<frame>.png, ImageSets/2017/val.txt

so `python -m car.metrics.davis --davis-root <run>/davis_root --results <run>/davis/<set>` re-scores it.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np

from car.errors import CarError
from car.outputs import write_text
from car.reporting.viz import label_png, palette

SAFE_NAME = re.compile(r"[A-Za-z0-9_+\-][A-Za-z0-9_.+\-]*")  # no separators, no leading dot


def safe_name(name: str, what: str) -> str:
    if not SAFE_NAME.fullmatch(str(name)):
        raise CarError(f"{what} {name!r} cannot be a file name in the DAVIS layout (letters, digits, '_', '-', "
                       f"'+', '.', not starting with '.'): rename it in the dataset.")
    return str(name)


class DavisWriter:
    """`write(sample, labels)` for each finished video sample; `root` is `<run dir>/davis`."""

    def __init__(self, root: str | Path, ground_truth_root: str | Path | None = None):
        self.root = Path(root)
        self.ground_truth_root = Path(ground_truth_root) if ground_truth_root is not None else None
        self.colours = palette()
        self.videos: list[str] = []  # videos whose ground truth was written, in order

    def video_dir(self, expression_set: str, video_id: str) -> Path:
        return self.root / safe_name(expression_set, "expression set") / safe_name(video_id, "video")

    def write(self, sample: dict, labels: np.ndarray) -> Path:
        """labels [T, H, W] (object ids 0-255) -> <root>/<set>/<video>/<frame>.png, one per frame id."""
        frame_ids = [safe_name(f, "frame id") for f in sample["frame_ids"]]
        if len(frame_ids) != len(labels):
            raise CarError(f"video {sample['video_id']} has {len(frame_ids)} frame ids but {len(labels)} predicted "
                           f"frames.")
        video = safe_name(sample["video_id"], "video")
        if self.ground_truth_root is not None and video not in self.videos:
            self.write_frames(self.ground_truth_root / "Annotations_unsupervised" / "480p" / video, frame_ids,
                              np.asarray(sample["target"], np.uint8))
            self.videos.append(video)
            self.write_list()
        return self.write_frames(self.video_dir(sample["expression_set"], video), frame_ids, labels)

    def write_frames(self, final: Path, frame_ids: list[str], labels: np.ndarray) -> Path:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".{final.name}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for frame_id, label in zip(frame_ids, np.asarray(labels, np.uint8)):
            label_png(label, self.colours).save(tmp / f"{frame_id}.png")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)  # the whole video appears at once
        return final

    def write_list(self) -> None:
        """ImageSets/2017/val.txt of the ground-truth tree: the videos written so far."""
        path = self.ground_truth_root / "ImageSets" / "2017" / "val.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, "".join(f"{v}\n" for v in self.videos))
