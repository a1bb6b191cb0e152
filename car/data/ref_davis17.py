"""Ref-DAVIS17: DAVIS-2017 videos with Khoreva et al.'s referring expressions (`dataset=ref_davis17`).

The tree (datasets/ref_davis17/README.md; ``root`` = ``<data_root>/ref_davis17``)::

    DAVIS/JPEGImages/480p/<video>/<frame>.jpg
    DAVIS/Annotations_unsupervised/480p/<video>/<frame>.png   object ids (0 background, 255 void)
    DAVIS/ImageSets/2017/{train,val}.txt                      val: 30 videos
    davis_text_annotations/Davis17_annot{1,2}[_full_video].txt

An expression file has one line per video and object, ``<video> <object id> "<expression>"``.
The two annotators wrote expressions from the first frame only (``annot1``, ``annot2``) and from
the whole video (``*_full_video``); annotator 1's files are UTF-8, annotator 2's latin-1. The
files misspell three (training) video names; they are read as the DAVIS names:
clasic-car -> classic-car, dog-scale -> dogs-scale, motor-bike -> motorbike.

One item per (expression set, video), in the agreed video sample format::

    {"video_id": str, "expression_set": str, "frame_ids": list[str],
     "frames": uint8 tensor [T, 3, H, W], "target": uint8 tensor [T, H, W],
     "expressions": {object id: expression}}

Each expression set is a separate prediction of every video, scored on its own (the usual protocol
reports their mean). Checked when built (file listings and the expression files only): every
expression line well-formed and non-empty, every video name a DAVIS-2017 video, each video of the
split with its frames and annotations (same count, same names) and an expression in every set.
Checked when an item is read: frames and annotations decodable and of one size, and every
expression's object id present in the video's annotations. Problems are one sentence naming the
file: at construction with ``on_missing="fail"``; with ``"skip"`` (on_bad_sample=skip) the
affected items raise when read, and the data guard counts and lists them.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from car.data.common import ON_MISSING, choose_expression_sets, read_rgb, read_split_file
from car.data.folder import read_label_values
from car.errors import CarError

README = "datasets/ref_davis17/README.md"
RESOLUTION = "480p"
ANNOTATIONS = "Annotations_unsupervised"
TEXT_DIR = "davis_text_annotations"
EXPRESSION_FILES = {  # expression set -> (file, encoding)
    "annot1": ("Davis17_annot1.txt", "utf-8"),
    "annot1_full_video": ("Davis17_annot1_full_video.txt", "utf-8"),
    "annot2": ("Davis17_annot2.txt", "latin-1"),
    "annot2_full_video": ("Davis17_annot2_full_video.txt", "latin-1"),
}
EXPRESSION_SETS = tuple(EXPRESSION_FILES)
VIDEO_NAME_FIXES = {"clasic-car": "classic-car", "dog-scale": "dogs-scale", "motor-bike": "motorbike"}
VOID = 255
_LINE = re.compile(r'^(\S+)\s+(\d+)\s+"(.*)"\s*$')


def read_expressions(path: Path, encoding: str, known_videos: set[str]) -> dict[str, dict[int, str]]:
    """video -> {object id: expression} of one expression file (one-sentence CarError naming the line)."""
    if not path.is_file():
        raise CarError(f"Ref-DAVIS17 expression file {path} does not exist: extract davis_text_annotations.zip "
                       f"(see {README}).")
    try:
        text = path.read_text(encoding=encoding)
    except UnicodeDecodeError as exc:
        raise CarError(f"Ref-DAVIS17 expression file {path} is not {encoding} text ({exc.reason} at byte "
                       f"{exc.start}): re-extract davis_text_annotations.zip (see {README}).") from None
    out: dict[str, dict[int, str]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        match = _LINE.match(line.strip())
        if match is None:
            raise CarError(f'{where} is not `<video> <object id> "<expression>"`: {line.strip()[:80]!r}.')
        video, obj, expression = VIDEO_NAME_FIXES.get(match[1], match[1]), int(match[2]), match[3].strip()
        if not expression:
            raise CarError(f"{where} has an empty expression for object {obj} of video {video}.")
        if video not in known_videos:
            raise CarError(f"{where} names video {match[1]!r}, which is not a DAVIS-2017 video of this tree.")
        if obj < 1 or obj == VOID:
            raise CarError(f"{where} gives object id {obj}; DAVIS object ids are 1..254.")
        if obj in out.setdefault(video, {}):
            raise CarError(f"{where} repeats object {obj} of video {video}.")
        out[video][obj] = expression
    return out


def _stems(folder: Path, suffix: str) -> list[str]:
    return sorted(p.stem for p in folder.glob(f"*{suffix}")) if folder.is_dir() else []


class RefDavis17(Dataset):
    """Ref-DAVIS17 items, one per (expression set, video); see the module docstring."""

    def __init__(self, root: str | Path, split: str = "val", expression_sets: list[str] | None = None,
                 limit: int | None = None, on_missing: str = "fail") -> None:
        if on_missing not in ON_MISSING:
            raise CarError(f"on_missing must be one of {', '.join(ON_MISSING)}, got {on_missing!r}.")
        sets = choose_expression_sets("Ref-DAVIS17", expression_sets, EXPRESSION_SETS)
        self.root, self.split, self.expression_sets = Path(root).expanduser(), split, sets
        self.davis = self.root / "DAVIS"
        if not self.davis.is_dir():
            raise CarError(f"Ref-DAVIS17 not found: {self.davis} does not exist; prepare it as described in "
                           f"{README}, or set paths.data_root to the folder that holds ref_davis17/.")
        self.videos = read_split_file(self.davis / "ImageSets" / "2017" / f"{split}.txt", README)
        known = self._known_videos()
        self.expressions = {s: read_expressions(self.root / TEXT_DIR / EXPRESSION_FILES[s][0],
                                                EXPRESSION_FILES[s][1], known) for s in sets}
        self.frame_ids: dict[str, list[str]] = {}
        self.problems: dict[tuple[str, str], str] = {}  # (set, video) -> the sentence its item raises
        for video in self.videos:
            self._check_video(video)
        self.items = [(s, v) for s in sets for v in self.videos]
        if limit is not None:
            if isinstance(limit, bool) or int(limit) < 1:
                raise CarError(f"limit must be a positive integer or None, got {limit!r}.")
            self.items = self.items[: int(limit)]
        bad = [self.problems[i] for i in self.items if i in self.problems]
        if bad and (on_missing == "fail" or len(bad) == len(self.items)):
            raise CarError(bad[0] if len(bad) == 1 else f"{len(bad)} of {len(self.items)} Ref-DAVIS17 items "
                                                        f"cannot be read; the first: {bad[0]}")

    def _known_videos(self) -> set[str]:
        listed = set()
        for name in ("train", "val"):
            path = self.davis / "ImageSets" / "2017" / f"{name}.txt"
            if path.is_file():
                listed |= {line.strip() for line in path.read_text().splitlines() if line.strip()}
        frames = self.davis / "JPEGImages" / RESOLUTION
        on_disk = {p.name for p in frames.iterdir() if p.is_dir()} if frames.is_dir() else set()
        return listed | on_disk | set(self.videos)

    def _check_video(self, video: str) -> None:
        frame_dir, label_dir = self._frame_dir(video), self._label_dir(video)
        frames, labels = _stems(frame_dir, ".jpg"), _stems(label_dir, ".png")
        self.frame_ids[video] = frames
        problem = None
        if not frames:
            problem = f"Ref-DAVIS17 video {video} has no frames: {frame_dir} holds no .jpg; re-extract (see {README})."
        elif len(frames) != len(labels):
            problem = (f"Ref-DAVIS17 video {video} has {len(frames)} frames in {frame_dir} but {len(labels)} "
                       f"annotations in {label_dir}; re-extract (see {README}).")
        elif frames != labels:
            odd = min(set(frames) ^ set(labels))
            problem = (f"Ref-DAVIS17 video {video}: frame {odd} is in only one of {frame_dir} and {label_dir}; "
                       f"re-extract (see {README}).")
        for s in self.expression_sets:
            file_problem = None if self.expressions[s].get(video) else \
                f"{self.root / TEXT_DIR / EXPRESSION_FILES[s][0]} has no expression for video {video}."
            if problem or file_problem:
                self.problems[(s, video)] = problem or file_problem

    def _frame_dir(self, video: str) -> Path:
        return self.davis / "JPEGImages" / RESOLUTION / video

    def _label_dir(self, video: str) -> Path:
        return self.davis / ANNOTATIONS / RESOLUTION / video

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        expression_set, video = self.items[index]
        if (expression_set, video) in self.problems:
            raise CarError(self.problems[(expression_set, video)])
        frame_ids = self.frame_ids[video]
        images = [read_rgb(self._frame_dir(video) / f"{f}.jpg") for f in frame_ids]  # each [H, W, 3]
        for frame_id, image in zip(frame_ids, images):
            if image.shape != images[0].shape:
                raise CarError(f"Ref-DAVIS17 frame {self._frame_dir(video) / f'{frame_id}.jpg'} is "
                               f"{image.shape[1]}x{image.shape[0]} but the video's first frame is "
                               f"{images[0].shape[1]}x{images[0].shape[0]}; re-extract (see {README}).")
        frames = np.stack(images)  # [T, H, W, 3]
        targets = []
        for frame_id, frame in zip(frame_ids, frames):
            path = self._label_dir(video) / f"{frame_id}.png"
            label = read_label_values(path, ("P", "L"))  # int64 [H, W]
            if label.shape != frame.shape[:2]:
                raise CarError(f"Ref-DAVIS17 annotation {path} is {label.shape[1]}x{label.shape[0]} but its frame is "
                               f"{frame.shape[1]}x{frame.shape[0]}; re-extract (see {README}).")
            if label.max() > VOID:
                raise CarError(f"Ref-DAVIS17 annotation {path} has values above 255; it is not a DAVIS annotation.")
            targets.append(label.astype(np.uint8))
        target = np.stack(targets)  # [T, H, W]
        expressions = dict(sorted(self.expressions[expression_set][video].items()))
        present = set(np.unique(target).tolist()) - {0, VOID}
        absent = [obj for obj in expressions if obj not in present]
        if absent:
            raise CarError(f"{self.root / TEXT_DIR / EXPRESSION_FILES[expression_set][0]} refers to object {absent[0]} "
                           f"of video {video}, which its annotations ({self._label_dir(video)}) do not have.")
        return {"video_id": video, "expression_set": expression_set, "frame_ids": list(frame_ids),
                "frames": torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2))),  # [T, 3, H, W]
                "target": torch.from_numpy(target), "expressions": expressions}

    def __repr__(self) -> str:
        return (f"RefDavis17(root={str(self.root)!r}, split={self.split!r}, "
                f"expression_sets={self.expression_sets}, num_items={len(self)})")
