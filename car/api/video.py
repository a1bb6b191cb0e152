"""CaR on a video: every frame segmented like an image, with the same phrases and settings.

    seg = CarSegmenter.from_profile("shapes")
    video = seg.video("clip.mp4", ["circle", "heart"])     # a video file, a folder of frames, or a list of frames
    video.fps, video.frame_names                            # the clip's rate; "00000", ... (a folder: file stems)
    video.label_maps                                        # [T, H, W] int64: 0 background, k phrase k
    video.frames[t]                                         # frame t's car.api.Segmentation (scores, trace ...)
    video.to_json()                                         # per-phrase scores per frame, frames/s

The phrases' text embeddings are computed once for the whole video before the first frame
(CaR.embed_texts), never per frame; each frame then runs exactly what `seg(image, phrases)` runs,
so a frame's label map equals the one of the same picture given as an image. `iter_frames` yields
the frames one by one for callers that stream (car-segment writes each frame as it comes).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from car.api.images import Segmentation, clean_phrases, read_image
from car.data.video_io import FOLDER_FPS, VideoSource, open_video
from car.errors import CarError


@dataclass
class VideoSegmentation:
    """What CaR found for K phrases on the T frames of a video."""

    source: str | None  # the file or folder read, None for frames given in memory
    fps: float
    texts: list[str]  # phrase k has label id k + 1, in every frame
    frame_names: list[str]
    frames: list[Segmentation]  # one per frame, in order
    timings: dict = field(default_factory=dict)  # seconds: texts (embedded once), segment (all frames); frames/s

    @property
    def label_maps(self) -> np.ndarray:
        """[T, H, W] int64: 0 = background, k = texts[k - 1]."""
        return np.stack([f.label_map for f in self.frames])

    @property
    def scores(self) -> list[list[float | None]]:
        """[T][K] final classifier score per frame and phrase; None where the recurrence pruned it."""
        return [list(f.scores) for f in self.frames]

    def to_json(self) -> dict:
        summary = VideoSummary(self.texts)
        for name, frame in zip(self.frame_names, self.frames):
            summary.add(name, frame)
        return {"video": self.source, "fps": self.fps, **summary.to_json(), "timings": dict(self.timings)}


class VideoSummary:
    """Per-frame records and per-phrase totals, built frame by frame (a stream never holds all frames)."""

    def __init__(self, texts: list[str]):
        self.texts = list(texts)
        self.per_frame: list[dict] = []
        self.size: list[int] | None = None

    def add(self, name: str, frame: Segmentation) -> None:
        counts = np.bincount(frame.label_map.ravel(), minlength=len(self.texts) + 1)  # [K + 1] pixels per label
        self.size = list(frame.label_map.shape)
        self.per_frame.append({"frame": name, "scores": list(frame.scores), "steps": len(frame.trace),
                               "pixels": [int(c) for c in counts[1:]], **frame.resized})

    def phrases(self) -> list[dict]:
        """Per phrase: frames where it survived the recurrence, frames where it covers pixels, its mean
        final score over the frames it survived (None if none) and its mean area."""
        out = []
        area = (self.size[0] * self.size[1]) if self.size else 1
        for k, text in enumerate(self.texts):
            kept = [f["scores"][k] for f in self.per_frame if f["scores"][k] is not None]
            pixels = [f["pixels"][k] for f in self.per_frame]
            out.append({"text": text, "label": k + 1, "frames_kept": len(kept),
                        "frames_present": sum(p > 0 for p in pixels),
                        "mean_score": round(float(np.mean(kept)), 6) if kept else None,
                        "mean_area": round(float(np.mean(pixels)) / area, 6) if pixels else 0.0})
        return out

    def to_json(self) -> dict:
        return {"frames": len(self.per_frame), "size": self.size, "texts": list(self.texts),
                "labels": {str(k + 1): t for k, t in enumerate(self.texts)}, "phrases": self.phrases(),
                "per_frame": self.per_frame}


class InMemoryFrames:
    """A list of frames (paths, PIL images or arrays, as car.api reads them) as a video source."""

    def __init__(self, frames, fps: float | None = None):
        self.items = list(frames)
        if not self.items:
            raise CarError("The frame list is empty: give at least one frame.")
        if fps is not None and not fps > 0:
            raise CarError(f"The frame rate must be positive, got {fps}.")
        self.fps = float(fps or FOLDER_FPS)
        self.path, self.frame_count = None, len(self.items)

    def frames(self, max_frames: int | None = None) -> Iterator[tuple[str, np.ndarray]]:
        size = None
        for index, item in enumerate(self.items[:max_frames]):
            rgb = read_image(item)  # [H, W, 3] uint8
            if size is not None and rgb.shape[:2] != size:
                raise CarError(f"Frame {index} is {rgb.shape[1]}x{rgb.shape[0]} but frame 0 is {size[1]}x{size[0]}; "
                               f"a video's frames share one size.")
            size = rgb.shape[:2]
            yield f"{index:05d}", rgb


def video_source(source, fps: float | None = None):
    """A path (video file or frame folder), an already opened VideoSource, or a list of frames."""
    if isinstance(source, (VideoSource, InMemoryFrames)):
        return source
    if isinstance(source, (str, Path)):
        return open_video(source, fps)
    if isinstance(source, np.ndarray) and source.ndim == 4:  # [T, H, W, 3]
        return InMemoryFrames(list(source), fps)
    if isinstance(source, (list, tuple)):
        return InMemoryFrames(source, fps)
    raise CarError(f"A video must be a path (video file or frame folder) or a list of frames, got "
                   f"{type(source).__name__}.")


def iter_frames(seg, source, texts, max_frames: int | None = None, timings: dict | None = None
                ) -> Iterator[tuple[str, Segmentation]]:
    """(frame name, Segmentation) per frame; the phrases are embedded once, before the first frame.
    `timings` (optional dict) receives texts / segment seconds and frames_per_second as it goes."""
    if max_frames is not None and max_frames < 1:
        raise CarError(f"max_frames must be at least 1, got {max_frames}.")
    phrases = clean_phrases(texts)
    timings = {} if timings is None else timings
    start = time.perf_counter()
    seg.segmenter.car.embed_texts(phrases)
    timings["texts"] = round(time.perf_counter() - start, 4)
    segment = 0.0
    for count, (name, rgb) in enumerate(source.frames(max_frames), start=1):
        tick = time.perf_counter()
        result = seg(rgb, phrases)
        segment += time.perf_counter() - tick
        timings.update(segment=round(segment, 4), frames_per_second=round(count / max(segment, 1e-9), 3))
        yield name, result


def segment_video(seg, source, texts, fps: float | None = None, max_frames: int | None = None) -> VideoSegmentation:
    """CarSegmenter.video: all frames in memory (stream long clips with iter_frames)."""
    video = video_source(source, fps)
    timings: dict = {}
    names, frames = [], []
    for name, result in iter_frames(seg, video, texts, max_frames, timings):
        names.append(name)
        frames.append(result)
    path = None if video.path is None else str(video.path)
    return VideoSegmentation(path, video.fps, list(frames[0].texts), names, frames, timings)
