"""car/data/video_io.py (issue #27): videos and frame folders in, browser-playable H.264 out; a bad
video or frame folder is one sentence naming the file."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import warnings

import numpy as np
import pytest
from PIL import Image

from car.data.video_io import (
    FOLDER_FPS,
    VideoWriter,
    even_size,
    open_video,
    read_video,
    write_video,
)
from car.errors import CarError
from tests.video_helpers import (
    clip_frames,
    no_frame_mp4,
    probe,
    save_clip,
    save_frame_folder,
    zeroed_payload,
)


def test_round_trip_is_browser_playable_h264(tmp_path):
    """Odd-sized frames come out padded to even sizes, H.264 yuv420p, moov first, the rate kept;
    decoding gives the frames back (lossy, close)."""
    frames = [f[:63, :61] for f in clip_frames(4, scale=1)]  # 61x63: odd both ways
    path = write_video(tmp_path / "clip.mp4", frames, fps=12.5)
    info = probe(path)
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p" and info["moov_first"]
    assert (info["width"], info["height"]) == (62, 64) and info["frames"] == 4 and info["fps"] == 12.5
    decoded, fps, names = read_video(path)
    assert fps == 12.5 and names == ["00000", "00001", "00002", "00003"]
    for got, want in zip(decoded, frames):
        assert got.shape == (64, 62, 3) and got.dtype == np.uint8
        assert np.abs(got[:63, :61].astype(int) - want).mean() < 8  # H.264 at crf 20 on 64 px glyphs
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left beside it


def test_open_video_checks_first_and_streams(tmp_path):
    path = save_clip(tmp_path / "c.mp4", clip_frames(5), fps=10)
    video = open_video(path)
    assert (video.fps, video.size, video.frame_count, video.name) == (10.0, (64, 64), 5, "c")
    assert [name for name, _ in video.frames(max_frames=2)] == ["00000", "00001"]
    assert open_video(path, fps=3).fps == 3.0


def test_frame_folder_in_natural_order(tmp_path):
    frames = clip_frames(11)
    save_frame_folder(tmp_path / "shots", frames, pattern="frame_{}.png")  # frame_2 sorts before frame_10
    video = open_video(tmp_path / "shots")
    assert video.fps == FOLDER_FPS and video.frame_count == 11 and video.name == "shots"
    names, got = zip(*video.frames())
    assert list(names) == [f"frame_{t}" for t in range(11)]
    assert all(np.array_equal(a, b) for a, b in zip(got, frames))  # PNG: lossless
    assert open_video(tmp_path / "shots", fps=30).fps == 30.0


def test_display_rotation_matches_ffmpeg(tmp_path):
    """A phone clip stored sideways with a display matrix comes out upright, exactly as FFmpeg's own
    command line (which rotates by default) shows it."""
    if importlib.util.find_spec("imageio_ffmpeg") is None:
        pytest.skip("imageio-ffmpeg not installed (pip install -e '.[dev]'): it provides the reference ffmpeg")
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    wide = np.zeros((32, 64, 3), np.uint8)
    wide[:, :16] = 255  # a white band on the left
    write_video(tmp_path / "wide.mp4", [wide] * 3, fps=5)
    subprocess.run([ffmpeg, "-loglevel", "error", "-display_rotation", "90", "-i", str(tmp_path / "wide.mp4"),
                    "-c", "copy", str(tmp_path / "phone.mp4")], check=True)
    raw = subprocess.run([ffmpeg, "-loglevel", "error", "-i", str(tmp_path / "phone.mp4"), "-frames:v", "1",
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], check=True, capture_output=True).stdout
    frames, _, _ = read_video(tmp_path / "phone.mp4")
    assert frames[0].shape == (64, 32, 3)
    assert np.array_equal(frames[0], np.frombuffer(raw, np.uint8).reshape(64, 32, 3))
    assert open_video(tmp_path / "phone.mp4").size == (64, 32)


def test_bad_videos_are_one_sentence_naming_the_file(tmp_path):
    good = save_clip(tmp_path / "good.mp4", clip_frames(3))
    (tmp_path / "text.mp4").write_text("not a video at all\n" * 20)
    (tmp_path / "empty.mp4").write_bytes(b"")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[:300])
    cases = {tmp_path / "text.mp4": "Cannot read .* as a video",
             tmp_path / "empty.mp4": "empty file",
             truncated: "holds no video frames",  # the header cut inside the track table
             zeroed_payload(good, tmp_path / "zeroed.mp4"): "Cannot decode .* after 0 frame",
             no_frame_mp4(tmp_path / "noframe.mp4"): "holds no video frames",
             tmp_path / "missing.mp4": "does not exist"}
    for path, message in cases.items():
        with pytest.raises(CarError, match=message) as info:
            open_video(path)
        text = str(info.value)
        assert str(path.name) in text and "\n" not in text and "Errno" not in text


def test_truncated_video_is_said_not_silent(tmp_path):
    """A file cut short still opens, but ends before the frames its container declares: a warning
    names it and the count (not an error: an edit list can hide frames of a sound file too)."""
    good = save_clip(tmp_path / "good.mp4", clip_frames(6, scale=2))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(good.read_bytes()[: int(good.stat().st_size * 0.9)])
    video = open_video(cut)
    assert video.frame_count == 6
    with pytest.warns(UserWarning, match=r"cut.mp4' declares 6 frames but only \d could be decoded"):
        assert len(list(video.frames())) < 6
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the whole file: no warning
        assert len(list(open_video(good).frames())) == 6


def test_bad_frame_folders(tmp_path):
    save_frame_folder(tmp_path / "broken", clip_frames(3))
    (tmp_path / "broken" / "00001.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(CarError, match=r"Cannot read frame '.*00001.png'"):
        open_video(tmp_path / "broken")
    save_frame_folder(tmp_path / "sizes", clip_frames(2))
    Image.fromarray(clip_frames(1, scale=2)[0]).save(tmp_path / "sizes" / "00002.png")
    with pytest.raises(CarError, match=r"'.*00002.png' is 128x128 but the frames before it are 64x64"):
        open_video(tmp_path / "sizes")
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "notes.txt").write_text("no frames here")
    with pytest.raises(CarError, match="holds no frame"):
        open_video(tmp_path / "none")
    with pytest.raises(CarError, match="must be positive"):
        open_video(tmp_path / "sizes", fps=0)


def test_writer_never_leaves_half_a_file(tmp_path):
    frames = clip_frames(2)
    with pytest.raises(RuntimeError), VideoWriter(tmp_path / "out.mp4", fps=8) as out:
        out.write(frames[0])
        raise RuntimeError("the segmenter failed on frame 1")
    with pytest.raises(CarError, match="is 128x128, the first was 64x64"), \
            VideoWriter(tmp_path / "out.mp4", fps=8) as out:
        out.write(frames[0])
        out.write(clip_frames(1, scale=2)[0])
    with pytest.raises(CarError, match="No frame was written"), VideoWriter(tmp_path / "out.mp4", fps=8):
        pass
    assert list(tmp_path.iterdir()) == []


def test_even_size_pads_with_the_edge():
    rgb = np.arange(3 * 5 * 3, dtype=np.uint8).reshape(3, 5, 3)
    padded = even_size(rgb)
    assert padded.shape == (4, 6, 3) and np.array_equal(padded[:3, :5], rgb)
    assert np.array_equal(padded[3, :5], rgb[2]) and np.array_equal(padded[:3, 5], rgb[:, 4])
    assert even_size(padded) is padded


def test_without_pyav_one_sentence_says_how_to_install(tmp_path, monkeypatch):
    path = save_clip(tmp_path / "c.mp4", clip_frames(2))
    monkeypatch.setitem(sys.modules, "av", None)  # import av -> ImportError
    with pytest.raises(CarError, match=r'needs PyAV: pip install "car-bench\[video\]"'):
        open_video(path)
