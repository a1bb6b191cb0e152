"""Videos in and out for CaR on your own clips.

    source = open_video("clip.mp4")            # or a folder of frames; checks the file before any model loads
    source.fps, source.size, source.frame_count
    for name, rgb in source.frames():          # name "00000", "00001", ... (a folder: the frame's file stem)
        ...                                    # rgb [H, W, 3] uint8, the phone's display rotation applied
    with VideoWriter("overlay.mp4", fps=source.fps) as out:
        out.write(rgb)                         # H.264, yuv420p, even sizes: browsers play it

Decoding and encoding go through PyAV (FFmpeg's libraries and libx264 ship in its wheel; the `video`
extra: pip install "car-bench[video]"). A folder of frames is read by car/data/images.py (16-bit,
float, alpha) in natural order (frame_2 before frame_10) and plays at FOLDER_FPS unless told
otherwise. A file that is not a video, holds no frame or breaks while decoding, and a frame folder
with an unreadable frame or frames of different sizes, stop with one sentence naming the file
(car.errors.CarError).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from car.errors import CarError

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ogv", ".wmv", ".flv")
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm")
FOLDER_FPS = 24.0  # a frame folder carries no rate: DAVIS's 24 frames/s unless the caller gives one
ENCODERS = ("libx264", "libopenh264")  # H.264 encoders, first available wins (PyAV's wheels ship libx264)
INSTALL = 'pip install "car-bench[video]"'


def _av():
    try:
        import av
    except ImportError:
        raise CarError(f"Reading and writing videos needs PyAV: {INSTALL}.") from None
    return av


def is_video_file(path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def _why(err: Exception, path: Path | None = None) -> str:
    """FFmpeg's or Pillow's own words ("Invalid data found when processing input"), without errno and
    the file name (the sentence names it already)."""
    text = getattr(err, "strerror", None) or (str(err).splitlines()[0] if str(err) else "")
    return (text.replace(f" '{path}'", "") if path else text) or type(err).__name__


def _natural_key(path: Path) -> list:
    """frame_2 before frame_10: digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


@dataclass
class VideoSource:
    """A checked video: a file (decoded by PyAV) or a folder of frames."""

    path: Path
    fps: float
    size: tuple[int, int]  # (H, W) of the frames as returned (display rotation applied)
    frame_count: int | None  # the container's count (None when it does not say); a folder: its frames
    frame_files: list[Path] | None = None  # a folder's frames, in order; None for a video file

    @property
    def name(self) -> str:
        """The video's name for its outputs: the file's stem or the folder's name."""
        return self.path.stem if self.frame_files is None else self.path.name

    def frames(self, max_frames: int | None = None) -> Iterator[tuple[str, np.ndarray]]:
        """(frame name, RGB [H, W, 3] uint8) in order; at most `max_frames`."""
        if self.frame_files is not None:
            for path in self.frame_files[:max_frames]:
                yield path.stem, _read_frame(path, self.size)
            return
        yield from _decode(self.path, max_frames, self.frame_count)


def open_video(source, fps: float | None = None) -> VideoSource:
    """A video file or a folder of frames, checked: the file's first frame is decoded (every frame
    folder image's header is read) so that a bad input fails before any model loads. `fps`
    overrides the file's rate (a folder: default FOLDER_FPS)."""
    path = Path(source).expanduser()
    if fps is not None and not fps > 0:
        raise CarError(f"The frame rate must be positive, got {fps}.")
    if path.is_dir():
        return _open_folder(path, fps or FOLDER_FPS)
    if not path.is_file():
        raise CarError(f"Video '{source}' does not exist.")
    if path.stat().st_size == 0:
        raise CarError(f"Video '{path}' is an empty file (0 bytes).")
    av = _av()
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise CarError(f"'{path}' holds no video frames (it has no video stream).")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            count = int(stream.frames) or None
    except CarError:
        raise
    except (av.FFmpegError, OSError, ValueError) as err:
        raise CarError(f"Cannot read '{path}' as a video ({_why(err)}).") from None
    first = next(_decode(path, 1), None)
    if first is None:
        raise CarError(f"'{path}' holds no video frames.")
    rate = float(fps or (rate if rate and rate > 0 else FOLDER_FPS))
    return VideoSource(path, rate, first[1].shape[:2], count)


def _open_folder(path: Path, fps: float) -> VideoSource:
    from PIL import Image

    files = sorted((p for p in path.iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES), key=_natural_key)
    if not files:
        raise CarError(f"Frame folder '{path}' holds no frame ({', '.join(FRAME_SUFFIXES)} files).")
    size = None
    for file in files:
        try:
            with Image.open(file) as img:
                frame_size = (img.height, img.width)
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            raise CarError(f"Cannot read frame '{file}' as an image ({_why(err, file)}).") from None
        if size is not None and frame_size != size:
            raise CarError(f"Frame '{file}' is {frame_size[1]}x{frame_size[0]} but the frames before it are "
                           f"{size[1]}x{size[0]}; a video's frames share one size.")
        size = frame_size
    return VideoSource(path, float(fps), size, len(files), files)


def _read_frame(path: Path, size: tuple[int, int]) -> np.ndarray:
    """One frame through the project's image reader (16-bit and float frames scaled, alpha flattened)."""
    from car.data.images import read_image_file

    rgb = read_image_file(path, fix="check or replace the frame")  # [H, W, 3] uint8
    if rgb.shape[:2] != tuple(size):
        raise CarError(f"Frame '{path}' changed size while the video was read.")
    return rgb


def _decode(path: Path, max_frames: int | None, declared: int | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """PyAV decoding of the first video stream -> ("00000", RGB [H, W, 3] uint8), ...; a file that
    ends before the frame count its container declares (truncated) is said in a warning, not
    silently (an edit list can also hide frames, so it is not an error)."""
    av = _av()
    index = 0
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                if max_frames is not None and index >= max_frames:
                    return
                rgb = frame.to_ndarray(format="rgb24")  # [H, W, 3]
                turns = round(getattr(frame, "rotation", 0) / 90) % 4  # display matrix: counter-clockwise
                yield f"{index:05d}", np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb
                index += 1
    except (av.FFmpegError, OSError, ValueError) as err:
        raise CarError(f"Cannot decode '{path}' after {index} frame(s) ({_why(err)}).") from None
    if declared and index < declared:
        warnings.warn(f"'{path}' declares {declared} frames but only {index} could be decoded (a truncated file?); "
                      f"the results cover those {index}.", UserWarning, stacklevel=2)


def read_video(source, fps: float | None = None, max_frames: int | None = None) -> tuple[list[np.ndarray], float,
                                                                                     list[str]]:
    """The whole video in memory: (frames [H, W, 3] uint8, fps, frame names)."""
    video = open_video(source, fps)
    names, frames = [], []
    for name, rgb in video.frames(max_frames):
        names.append(name)
        frames.append(rgb)
    return frames, video.fps, names


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def even_size(rgb: np.ndarray) -> np.ndarray:
    """yuv420p halves the chroma planes: an odd height or width gets one more edge row/column."""
    h, w = rgb.shape[:2]
    if h % 2 or w % 2:
        rgb = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return rgb


class VideoWriter:
    """An H.264 (yuv420p, even sizes, moov atom first) mp4 that browsers play, written to a temporary
    file beside `path` and moved into place only when closed without error: never half-written."""

    def __init__(self, path, fps: float, crf: int = 20):
        self.path = Path(path)
        self.fps = Fraction(float(fps)).limit_denominator(1001)  # 29.97 -> 30000/1001
        self.crf = crf
        self.frames = 0
        self._container = self._stream = None
        self._size: tuple[int, int] | None = None
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.stem}.", suffix=".mp4.tmp")
        os.close(fd)
        self._tmp = Path(tmp)

    def _open(self, height: int, width: int) -> None:
        av = _av()
        self._container = av.open(str(self._tmp), "w", format="mp4", container_options={"movflags": "+faststart"})
        for codec in ENCODERS:
            try:
                self._stream = self._container.add_stream(codec, rate=self.fps)
                break
            except (av.FFmpegError, ValueError):
                continue
        if self._stream is None:
            raise CarError(f"This PyAV build has no H.264 encoder ({', '.join(ENCODERS)}); reinstall it: {INSTALL}.")
        self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, "yuv420p"
        self._stream.options = {"crf": str(self.crf)} if self._stream.codec_context.name == "libx264" else {}
        self._size = (height, width)

    def write(self, rgb: np.ndarray) -> None:
        """rgb [H, W, 3] uint8; every frame the size of the first."""
        rgb = even_size(np.ascontiguousarray(rgb, dtype=np.uint8))
        if self._container is None:
            self._open(*rgb.shape[:2])
        if rgb.shape[:2] != self._size:
            raise CarError(f"Frame {self.frames} of '{self.path}' is {rgb.shape[1]}x{rgb.shape[0]}, "
                           f"the first was {self._size[1]}x{self._size[0]}.")
        av = _av()
        for packet in self._stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> Path:
        """Flush the encoder and move the file into place."""
        if self._container is None:
            self.abort()
            raise CarError(f"No frame was written to '{self.path}'.")
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        self._container = None
        os.chmod(self._tmp, 0o666 & ~current_umask())  # mkstemp made it 0600; give it a normal file's mode
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        if self._container is not None:
            with contextlib.suppress(Exception):  # the file is discarded anyway
                self._container.close()
            self._container = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:  # noqa: PYI034 (typing.Self needs Python 3.11)
        return self

    def __exit__(self, kind, value, tb) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


def write_video(path, frames, fps: float) -> Path:
    """Frames [H, W, 3] uint8 (a list or an iterable) -> an H.264 mp4 at `path`."""
    with VideoWriter(path, fps) as out:
        for rgb in frames:
            out.write(rgb)
    return Path(path)
