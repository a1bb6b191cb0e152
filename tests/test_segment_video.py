"""`car-segment` on videos (issue #27): an mp4 or a frame folder -> DAVIS-style per-frame label PNGs,
a browser-playable overlay mp4 and a JSON summary; bad videos stop before the model loads (exit 2);
a failure mid-video leaves nothing half-written."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from car.apps.segment import main
from car.config import REPO_ROOT
from tests.video_helpers import clip_frames, probe, save_clip, save_frame_folder

PHRASES = ["circle", "heart", "ring"]


def check_video_outputs(out_dir, stem, frame_names, size, fps):
    """Mask folder of palette PNGs (label ids), overlay mp4 (H.264 yuv420p, one frame per frame, the
    rate), JSON whose per-frame pixels match the PNGs."""
    height, width = size
    masks = out_dir / stem
    assert sorted(p.name for p in masks.iterdir()) == sorted(f"{n}.png" for n in frame_names)
    labels = []
    for name in frame_names:
        png = Image.open(masks / f"{name}.png")
        assert png.mode == "P" and png.size == (width, height)
        labels.append(np.asarray(png))
    labels = np.stack(labels)  # [T, H, W]
    assert set(np.unique(labels)) <= set(range(len(PHRASES) + 1)) and labels.any()
    info = probe(out_dir / f"{stem}_overlay.mp4")
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p" and info["moov_first"]
    assert info["frames"] == len(frame_names) and info["fps"] == fps
    assert info["width"] % 2 == 0 and info["height"] % 2 == 0 and info["width"] >= width
    record = json.loads((out_dir / f"{stem}.json").read_text())
    assert record["frames"] == len(frame_names) and record["fps"] == fps and record["size"] == [height, width]
    assert record["texts"] == PHRASES and record["labels"] == {"1": "circle", "2": "heart", "3": "ring"}
    assert [f["frame"] for f in record["per_frame"]] == list(frame_names)
    for t, frame in enumerate(record["per_frame"]):
        assert len(frame["scores"]) == len(PHRASES)
        assert frame["pixels"] == [int((labels[t] == k).sum()) for k in range(1, len(PHRASES) + 1)]
    assert {"profile", "theta", "crf"} <= set(record["settings"])
    assert record["timings"]["frames_per_second"] > 0 and record["timings"]["texts"] >= 0
    assert not [p for p in out_dir.iterdir() if p.name.startswith(".")]  # no temporary left
    return record, labels


@pytest.mark.slow
def test_command_on_an_mp4_end_to_end(tmp_path):
    """The real command in a subprocess, CaR's default settings (CRF on); labels equal the API's."""
    frames = clip_frames(3, scale=2)  # 128x128
    clip = save_clip(tmp_path / "in" / "clip.mp4", frames, fps=8)
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = subprocess.run([sys.executable, "-m", "car.apps.segment", str(clip), "--texts", ",".join(PHRASES),
                          "--out", str(out)], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
                         check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "1 video(s)" in run.stderr
    record, labels = check_video_outputs(out, "clip", ["00000", "00001", "00002"], (128, 128), 8.0)
    assert record["video"] == str(clip)
    from car.api import CarSegmenter

    api = CarSegmenter.from_profile("shapes").video(clip, PHRASES)
    assert np.array_equal(api.label_maps, labels)  # the file's frames, decoded the same way


def test_frame_folder_with_video_flag(tmp_path):
    save_frame_folder(tmp_path / "shots", clip_frames(2), pattern="f{}.png")
    save_clip(tmp_path / "b.mp4", clip_frames(2), fps=4)
    out = tmp_path / "out"
    assert main([str(tmp_path / "shots"), str(tmp_path / "b.mp4"), "--video", "--fps", "10", "--post", "none",
                 "--texts", ",".join(PHRASES), "--out", str(out)]) == 0
    check_video_outputs(out, "shots", ["f0", "f1"], (64, 64), 10.0)
    check_video_outputs(out, "b", ["00000", "00001"], (64, 64), 10.0)  # --fps sets a file's rate too


def test_truncated_clip_is_a_note(tmp_path, capsys):
    """A clip cut short: its decodable frames are segmented, and the JSON and stderr say so."""
    good = save_clip(tmp_path / "good.mp4", clip_frames(6, scale=2), fps=8)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(good.read_bytes()[: int(good.stat().st_size * 0.9)])
    out = tmp_path / "out"
    assert main([str(cut), "--post", "none", "--texts", ",".join(PHRASES), "--out", str(out)]) == 0
    record = json.loads((out / "cut.json").read_text())
    assert record["frames_declared"] == 6 and record["frames"] < 6
    assert len(record["notes"]) == 1 and "declares 6 frames" in record["notes"][0]
    assert f"note: {record['notes'][0]}" in capsys.readouterr().err


def test_max_frames_and_names_shared_with_images(tmp_path):
    save_clip(tmp_path / "scene.mp4", clip_frames(4), fps=8)
    Image.fromarray(clip_frames(1)[0]).save(tmp_path / "scene.png")  # same stem as the video: scene-2
    out = tmp_path / "out"
    assert main([str(tmp_path / "scene.mp4"), str(tmp_path / "scene.png"), "--max-frames", "2", "--post", "none",
                 "--texts", ",".join(PHRASES), "--out", str(out)]) == 0
    check_video_outputs(out, "scene", ["00000", "00001"], (64, 64), 8.0)
    assert (out / "scene-2_labels.png").is_file() and (out / "scene-2.json").is_file()


@pytest.fixture
def no_model(monkeypatch):
    """Any model load fails the test: bad inputs must stop before it."""
    from car.api import CarSegmenter

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded for a bad input")

    monkeypatch.setattr(CarSegmenter, "from_profile", refuse)


@pytest.mark.parametrize("case", ["corrupt", "empty", "folder_bad_frame", "exists", "max_frames", "into_input"])
def test_bad_inputs_exit_2_before_the_model(tmp_path, capsys, no_model, case):
    out = tmp_path / "out"
    if case == "corrupt":
        (tmp_path / "clip.mp4").write_text("this is not a video\n" * 10)
        args, message = [str(tmp_path / "clip.mp4")], "Cannot read '.*clip.mp4' as a video"
    elif case == "empty":
        (tmp_path / "clip.mp4").write_bytes(b"")
        args, message = [str(tmp_path / "clip.mp4")], "clip.mp4' is an empty file"
    elif case == "folder_bad_frame":
        save_frame_folder(tmp_path / "shots", clip_frames(2))
        (tmp_path / "shots" / "00001.png").write_bytes(b"broken")
        args, message = [str(tmp_path / "shots"), "--video"], "Cannot read frame '.*00001.png'"
    elif case == "exists":
        save_clip(tmp_path / "clip.mp4", clip_frames(2))
        (out / "clip").mkdir(parents=True)
        args, message = [str(tmp_path / "clip.mp4")], r"1 output file\(s\) already exist, e.g. .*clip; .*--overwrite"
    elif case == "max_frames":
        save_clip(tmp_path / "clip.mp4", clip_frames(2))
        args, message = [str(tmp_path / "clip.mp4"), "--max-frames", "0"], "--max-frames must be at least 1"
    else:  # the frames' own folder would become the mask folder: refused even with --overwrite
        save_frame_folder(tmp_path / "shots", clip_frames(2))
        out = tmp_path
        args, message = [str(tmp_path / "shots"), "--video", "--overwrite"], "would hold or replace the input"
    assert main(args + ["--texts", "circle", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    import re

    assert re.search(message, err) and err.startswith("error: ") and len(err.splitlines()) == 1, err
    if case == "into_input":
        assert sorted(p.name for p in (tmp_path / "shots").iterdir()) == ["00000.png", "00001.png"]


def test_overwrite_replaces_an_earlier_run_whole(tmp_path):
    """--overwrite: the earlier mask folder is replaced, not merged (a frame it had and the new run
    has not is gone); without it the earlier run is refused and left as it was."""
    save_clip(tmp_path / "clip.mp4", clip_frames(3), fps=8)
    out = tmp_path / "out"
    args = [str(tmp_path / "clip.mp4"), "--post", "none", "--texts", ",".join(PHRASES), "--out", str(out)]
    assert main(args) == 0
    (out / "clip" / "99999.png").write_bytes((out / "clip" / "00000.png").read_bytes())  # from an older run
    before = (out / "clip.json").read_bytes()
    assert main(args) == 2 and (out / "clip.json").read_bytes() == before
    assert main(args + ["--overwrite", "--max-frames", "2"]) == 0
    check_video_outputs(out, "clip", ["00000", "00001"], (64, 64), 8.0)


def test_failure_mid_video_leaves_nothing(tmp_path, monkeypatch):
    """The segmenter breaks on frame 2: no mask folder, no overlay, no JSON, no temporary."""
    from car.api import CarSegmenter

    save_clip(tmp_path / "clip.mp4", clip_frames(3), fps=8)
    calls = {"n": 0}
    real_call = CarSegmenter.__call__

    def failing(self, image, texts):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("out of memory on frame 2")
        return real_call(self, image, texts)

    monkeypatch.setattr(CarSegmenter, "__call__", failing)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="frame 2"):
        main([str(tmp_path / "clip.mp4"), "--post", "none", "--texts", "circle", "--out", str(out)])
    assert calls["n"] == 2 and list(out.iterdir()) == []
