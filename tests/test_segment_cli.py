"""`car-segment` (issue #19): end to end on the tiny CLIP, every output file checked; bad inputs are
one sentence and exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from car.apps.segment import OVERLAY_MAX_PIXELS, expand_images, main, output_stems
from car.config import REPO_ROOT
from car.data.shapes import CLASSES
from tests.photo_helpers import PHONE_SIZE, phone_jpeg, save_scene

PHRASES = ["circle", "heart", "ring", "square"]


def check_outputs(out_dir, stem, size, texts):
    """The four files of one image: overlay (RGB, readable size), palette label PNG at the image's
    size, masks matching the labels, JSON with scores, trace, settings and timings."""
    width, height = size
    overlay = Image.open(out_dir / f"{stem}_overlay.png")
    assert overlay.mode == "RGB"
    assert max(overlay.size) >= 384 and overlay.size[0] * overlay.size[1] <= max(OVERLAY_MAX_PIXELS, width * height)
    labels_png = Image.open(out_dir / f"{stem}_labels.png")
    assert labels_png.mode == "P" and labels_png.size == (width, height)
    labels = np.asarray(labels_png)
    assert set(np.unique(labels)) <= set(range(len(texts) + 1))
    with np.load(out_dir / f"{stem}_masks.npz") as npz:
        masks, saved_texts, scores = npz["masks"], list(npz["texts"]), npz["scores"]
    assert masks.shape == (len(texts), height, width) and masks.dtype == bool
    assert saved_texts == texts
    for k in range(len(texts)):
        assert np.array_equal(masks[k], labels == k + 1)
    record = json.loads((out_dir / f"{stem}.json").read_text())
    assert record["texts"] == texts and record["size"] == [height, width]
    assert [p["text"] for p in record["phrases"]] == texts
    for p, s in zip(record["phrases"], scores):
        assert (p["score"] is None) == bool(np.isnan(s))
        assert p["pixels"] == int((labels == p["label"]).sum())
    assert record["trace"][0]["live"] == texts and record["trace"][-1]["pruned"] == []
    assert {"profile", "backbone", "eta", "theta", "lambda", "crf", "postprocess"} <= set(record["settings"])
    assert {"read", "car", "post", "total", "write"} <= set(record["timings"])
    return record


@pytest.mark.slow
def test_command_end_to_end(tmp_path):
    """The real command in a subprocess: a folder, a glob and a file; --theta/--post reach the config."""
    folder = tmp_path / "in"
    save_scene(folder / "a.png", 12, (96, 64))
    save_scene(folder / "b.jpg", 18, (80, 80))
    save_scene(tmp_path / "other" / "a.png", 16)  # same name as in/a.png: written as a-2
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "car.apps.segment", str(folder), str(tmp_path / "other" / "*.png"),
                           "--texts", ",".join(PHRASES), "--theta", "0.5", "--post", "none", "--out", str(out)],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "car-segment" in proc.stderr and "3/3" in proc.stderr  # the tqdm bar
    for stem, size in (("a", (96, 64)), ("b", (80, 80)), ("a-2", (64, 64))):
        record = check_outputs(out, stem, size, PHRASES)
        assert record["settings"]["theta"] == 0.5 and record["settings"]["crf"] is False
        assert record["settings"]["profile"] == "shapes"


def test_phone_photo(tmp_path, capsys):
    """A 6000x4000 JPEG: CaR runs on a copy within the budget, labels and masks come back full size."""
    path = phone_jpeg(tmp_path / "IMG_0001.jpg")
    assert main([str(path), "--texts", "circle, heart", "--out", str(tmp_path / "out")]) == 0
    record = check_outputs(tmp_path / "out", "IMG_0001", PHONE_SIZE, ["circle", "heart"])
    assert record["resized_from"] == [PHONE_SIZE[1], PHONE_SIZE[0]]
    h, w = record["resized_to"]
    assert h * w < 20_000 and w > h
    overlay = Image.open(tmp_path / "out" / "IMG_0001_overlay.png")
    assert overlay.size[0] * overlay.size[1] <= OVERLAY_MAX_PIXELS and overlay.size[0] > overlay.size[1]


def test_synonym_phrase_and_all_classes(tmp_path):
    path = save_scene(tmp_path / "s.png")
    out = tmp_path / "out"
    assert main([str(path), "--texts", ",".join(CLASSES[:3]), "--text", "ring,circle", "--out", str(out)]) == 0
    assert json.loads((out / "s.json").read_text())["texts"] == CLASSES[:3] + ["ring,circle"]


@pytest.mark.parametrize("args, match", [
    pytest.param(["{missing}", "--texts", "a"], "does not exist",
                 marks=pytest.mark.bad_input("an image path that does not exist", "car-segment")),
    pytest.param(["{notimage}", "--texts", "a"], "is corrupt or truncated, or not an image",
                 marks=pytest.mark.bad_input("a text file named .png", "car-segment")),
    pytest.param(["{scene}", "--texts", " , "], "No phrase given",
                 marks=pytest.mark.bad_input("only empty phrases", "car-segment")),
    pytest.param(["{scene}"], "No phrase given",
                 marks=pytest.mark.bad_input("no --texts at all", "car-segment")),
    pytest.param(["{scene}", "--texts", "a", "--profile", "nope"], "Unknown profile 'nope'",
                 marks=pytest.mark.bad_input("an unknown --profile", "car-segment")),
    pytest.param(["{scene}", "--texts", "a", "--backbone", "nope"], "Unknown backbone 'nope'",
                 marks=pytest.mark.bad_input("an unknown --backbone", "car-segment")),
    pytest.param(["{scene}", "--texts", "a", "--theta", "1.5"], "car.theta",
                 marks=pytest.mark.bad_input("--theta outside [0, 1]", "car-segment")),
    pytest.param(["{tmp}/*.gif", "--texts", "a"], "No image matches",
                 marks=pytest.mark.bad_input("a glob matching no image", "car-segment")),
    pytest.param(["{empty}", "--texts", "a"], "holds no image",
                 marks=pytest.mark.bad_input("a folder without images", "car-segment")),
])
def test_bad_inputs_one_sentence_exit_2(tmp_path, capsys, args, match, answer):
    (tmp_path / "notes.png").write_text("not an image")
    (tmp_path / "empty").mkdir()
    paths = {"missing": tmp_path / "missing.jpg", "notimage": tmp_path / "notes.png",
             "scene": save_scene(tmp_path / "s.png"), "tmp": tmp_path, "empty": tmp_path / "empty"}
    argv = [a.format(**paths) for a in args] + ["--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and match in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # refused before anything ran
    answer(f"exit 2, before any model loads: {err}")


def test_expand_images_and_unique_stems(tmp_path):
    for name in ("b.png", "a.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.png").write_bytes(b"")
    found = expand_images([str(tmp_path), str(tmp_path / "**" / "a.*"), str(tmp_path / "b.png")])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a.jpg", "b.png", "sub/a.png"]
    assert output_stems(found) == ["a", "b", "a-2"]
