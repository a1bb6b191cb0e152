"""Test clips for the video entry points (car.api video, car-segment, car-demo): shapes scenes as the
frames of a short clip (the glyphs slide a few pixels per frame), encoded by the tests themselves."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from PIL import Image

from car.data.shapes import render_scene, scene_seed

CLIP_SCENES = (12, 18)  # shapes val scenes whose glyphs the tiny CLIP finds (as the demo's examples)


def clip_frames(count: int = 3, scale: int = 1, scene: int = CLIP_SCENES[0]) -> list[np.ndarray]:
    """`count` frames [64*scale, 64*scale, 3] uint8: one scene rolled 2 px right per frame."""
    image = render_scene(scene_seed("val", scene))["image"]
    frames = [np.roll(image, 2 * t, axis=1) for t in range(count)]
    return [np.repeat(np.repeat(f, scale, axis=0), scale, axis=1) for f in frames]


def save_clip(path: Path, frames: list[np.ndarray], fps: float = 8.0) -> Path:
    from car.data.video_io import write_video

    path.parent.mkdir(parents=True, exist_ok=True)
    return write_video(path, frames, fps)


def save_frame_folder(folder: Path, frames: list[np.ndarray], pattern: str = "{:05d}.png") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / pattern.format(t) for t in range(len(frames))]
    for path, frame in zip(paths, frames):
        Image.fromarray(frame).save(path)
    return paths


def zeroed_payload(src: Path, dst: Path) -> Path:
    """A copy of an mp4 whose frame data (the mdat box) is all zeros: the header reads, no frame decodes."""
    data = bytearray(src.read_bytes())
    at = data.index(b"mdat")
    size = struct.unpack(">I", data[at - 4 : at])[0]
    data[at + 4 : at - 4 + size] = bytes(size - 8)
    dst.write_bytes(bytes(data))
    return dst


def no_frame_mp4(path: Path) -> Path:
    """An mp4 container opened for H.264 and closed before any frame: FFmpeg drops the empty track."""
    import av

    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        container.start_encoding()
    return path


def probe(path: Path) -> dict:
    """What a browser cares about: codec, profile, pixel format, size, rate, frame count, moov first."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        info = {"codec": stream.codec_context.name, "pix_fmt": stream.codec_context.pix_fmt,
                "profile": stream.codec_context.profile, "width": stream.codec_context.width,
                "height": stream.codec_context.height, "fps": float(stream.average_rate), "frames": frames,
                "format": container.format.name}
    head = Path(path).read_bytes()
    info["moov_first"] = head.index(b"moov") < head.index(b"mdat")  # faststart: plays while downloading
    return info
