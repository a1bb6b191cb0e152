"""Bad inputs to car-segment, the Python API and car-demo (issue #25): one sentence and exit code 2,
found before any model loads where the input allows it; nothing half-written, nothing replaced unasked."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

import car.api
import car.outputs
from car.apps.segment import main as segment
from car.config import REPO_ROOT
from car.errors import CarError
from tests.fs_faults import inject_write_error, run_with_mount
from tests.photo_helpers import save_scene

ONE_LINE = "one sentence, no traceback"


@pytest.fixture(scope="module")
def seg():
    return car.api.CarSegmenter.from_profile("shapes")


@pytest.fixture
def no_model(monkeypatch):
    """Loading a model fails the test: the check under test must come first."""
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the bad input was found")

    monkeypatch.setattr(car.api.CarSegmenter, "__init__", refuse)


def error_line(capsys) -> str:
    text = capsys.readouterr().err
    err = text.strip().splitlines()[-1]  # after the progress bar, if the batch had started
    assert err.startswith("error: ") and "Traceback" not in text and text.count("error") == 1, text
    return err


def files(folder) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.exists() else {}


@pytest.mark.bad_input("a truncated JPEG in the middle of a car-segment batch", "car-segment")
def test_truncated_image_in_a_batch_stops_before_the_model(tmp_path, capsys, no_model, answer):
    good = save_scene(tmp_path / "a.png")
    broken = save_scene(tmp_path / "b.jpg", size=(256, 256))
    data = broken.read_bytes()
    broken.write_bytes(data[: len(data) // 2])  # the header parses (a header-only check passes it), the data stops
    assert segment([str(good), str(broken), str(good), "--texts", "circle", "--out", str(tmp_path / "out")]) == 2
    err = error_line(capsys)
    assert "b.jpg is corrupt or truncated" in err and not (tmp_path / "out").exists()
    answer(f"exit 2, before any model loads: {err}")


@pytest.mark.bad_input("--out naming an existing file", "car-segment")
def test_out_is_a_file(tmp_path, capsys, no_model, answer):
    (tmp_path / "out").write_text("mine")
    assert segment([str(save_scene(tmp_path / "a.png")), "--texts", "circle", "--out", str(tmp_path / "out")]) == 2
    err = error_line(capsys)
    assert "is a file, not a folder" in err and (tmp_path / "out").read_text() == "mine"
    answer(f"exit 2, before any model loads: {err}")


@pytest.mark.bad_input("--out on a read-only file system (EROFS injected)", "car-segment")
def test_out_read_only_injected(tmp_path, capsys, monkeypatch, no_model, answer):
    inject_write_error(monkeypatch, errno.EROFS, where="open")
    assert segment([str(save_scene(tmp_path / "a.png")), "--texts", "circle", "--out", str(tmp_path / "out")]) == 2
    err = error_line(capsys)
    assert "the file system is read-only" in err
    answer(f"exit 2, before any model loads: {err}")


@pytest.mark.slow
@pytest.mark.bad_input("--out on a read-only tmpfs (root cannot write either)", "car-segment")
def test_out_read_only_mount(tmp_path, answer):
    image = save_scene(tmp_path / "a.png")
    done = run_with_mount([sys.executable, "-m", "car.apps.segment", image, "--texts", "circle", "--out",
                           tmp_path / "ro" / "seg"], tmp_path / "ro", "ro,size=16k", cwd=REPO_ROOT,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: Cannot write into --out")
    answer(f"exit 2: {done.stderr.strip().splitlines()[-1]}")


@pytest.mark.bad_input("a second car-segment into the same --out", "car-segment")
def test_second_run_refuses_to_replace_then_overwrite(tmp_path, capsys, monkeypatch, seg, answer):
    monkeypatch.setattr(car.api.CarSegmenter, "from_profile", classmethod(lambda cls, *a, **k: seg))
    image, out = save_scene(tmp_path / "a.png"), tmp_path / "out"
    assert segment([str(image), "--texts", "circle,ring", "--out", str(out)]) == 0
    first = files(out)
    assert sorted(first) == ["a.json", "a_labels.png", "a_masks.npz", "a_overlay.png"]
    capsys.readouterr()
    assert segment([str(image), "--texts", "circle", "--out", str(out)]) == 2
    err = error_line(capsys)
    assert "4 output file(s) already exist" in err and "pass --overwrite" in err and files(out) == first
    assert segment([str(image), "--texts", "circle", "--out", str(out), "--overwrite"]) == 0
    assert sorted(files(out)) == sorted(first) and files(out)["a.json"] != first["a.json"]
    answer(f"exit 2, nothing replaced: {err}")


@pytest.mark.bad_input("a full disk while a car-segment batch writes (ENOSPC injected)", "car-segment")
def test_full_disk_mid_batch_leaves_no_half_file(tmp_path, capsys, monkeypatch, seg, answer):
    monkeypatch.setattr(car.api.CarSegmenter, "from_profile", classmethod(lambda cls, *a, **k: seg))
    real_fsync = os.fsync

    def fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}").rsplit("/", 1)[-1].startswith(".b_overlay.png"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(car.outputs.os, "fsync", fsync)
    a, b, out = save_scene(tmp_path / "a.png"), save_scene(tmp_path / "b.png", 18), tmp_path / "out"
    assert segment([str(a), str(b), "--texts", "circle", "--out", str(out)]) == 2
    err = error_line(capsys)
    assert f"Cannot write {out / 'b_overlay.png'}: the disk is full" in err and "(1 of 2 images" in err
    assert sorted(files(out)) == ["a.json", "a_labels.png", "a_masks.npz", "a_overlay.png"]  # b: nothing, no temp
    answer(f"exit 2: {err}")


@pytest.mark.parametrize("phrases, match", [
    pytest.param(",".join(f"p{i}" for i in range(300)), "300 phrases given; at most 254 fit one label map",
                 marks=pytest.mark.bad_input("300 phrases", "car-segment, API, car-demo")),
    pytest.param("cat,dog,Cat", "Phrase 'Cat' is given twice",
                 marks=pytest.mark.bad_input("the same phrase twice", "car-segment, API, car-demo")),
])
def test_phrase_lists_are_refused_before_the_model(tmp_path, capsys, no_model, phrases, match, answer):
    assert segment([str(save_scene(tmp_path / "a.png")), "--texts", phrases, "--out", str(tmp_path / "out")]) == 2
    err = error_line(capsys)
    assert match in err
    answer(f"exit 2: {err}")


@pytest.mark.bad_input("[None] (or any non-string) as phrases", "API")
def test_none_phrase_is_refused(seg, answer):
    with pytest.raises(CarError, match=r"Phrase 1 is None \(NoneType\), not a string") as err:
        seg(np.zeros((8, 8, 3), np.uint8), [None])
    answer(str(err.value))


@pytest.mark.bad_input("a 10,000-character phrase", "car-segment, API, car-demo")
def test_overlong_phrase_is_said_to_be_cut(tmp_path, capsys, monkeypatch, seg, answer):
    long = "circle " * 1430
    with pytest.warns(UserWarning, match="CLIP reads only its first"):
        result = seg(save_scene(tmp_path / "a.png"), ["ring", long])
    assert len(result.notes) == 1 and "phrase 'circle circle" in result.notes[0]
    monkeypatch.setattr(car.api.CarSegmenter, "from_profile", classmethod(lambda cls, *a, **k: seg))
    assert segment([str(tmp_path / "a.png"), "--text", long, "--out", str(tmp_path / "out")]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and "tokens long; CLIP reads only its first" in notes[0]
    answer(f"runs; says once: {notes[0]}")


@pytest.mark.parametrize("device, match", [
    pytest.param("cuda", "this machine has no usable CUDA GPU: use --device cpu",
                 marks=pytest.mark.bad_input("--device cuda on a machine without a GPU", "car-segment, car-demo, API")),
    pytest.param("quantum", "Unknown device 'quantum'",
                 marks=pytest.mark.bad_input("an unknown --device", "car-segment, car-demo, API")),
])
def test_device_is_checked_before_the_model(tmp_path, capsys, monkeypatch, device, match, answer):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("car.run.build.load_backbones", lambda *a, **k: pytest.fail("a model was loaded"))
    argv = [str(save_scene(tmp_path / "a.png")), "--texts", "circle", "--device", device, "--out", str(tmp_path / "o")]
    assert segment(argv) == 2
    err = error_line(capsys)
    assert match in err
    answer(f"exit 2: {err}")


# --- car-demo ----------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.bad_input("car-demo on a port already in use", "car-demo")
def test_demo_port_in_use(capsys, no_model, answer):
    pytest.importorskip("gradio")
    from car.apps.demo import main as demo

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert demo(["--port", str(port)]) == 2
    captured = capsys.readouterr()
    assert "http://" not in captured.out  # no URL it does not own
    err = captured.err.strip()
    assert err == f"error: Cannot serve on 127.0.0.1:{port}: already in use; choose another --port (or stop the " \
                  f"program using it)."
    answer(f"exit 2, before any model loads, no URL printed: {err.replace(str(port), '<port>')}")


@pytest.mark.bad_input("a truncated JPEG uploaded to car-demo", "car-demo")
def test_demo_error_hides_the_server_path(tmp_path, seg, answer):
    from car.apps.demo import DemoBackend

    upload = tmp_path / "gradio" / "0a1b2c" / "photo.jpg"
    save_scene(upload, size=(256, 256))
    upload.write_bytes(upload.read_bytes()[:600])
    with pytest.raises(CarError) as err:
        DemoBackend(seg, tmp_path / "results").run(str(upload), "circle", 0.4, 0.6, 0.4, "none")
    message = str(err.value)
    assert "photo.jpg is corrupt or truncated" in message and str(upload.parent) not in message
    answer(message)


@pytest.mark.slow
@pytest.mark.bad_input("car-demo stopped (SIGTERM) after serving", "car-demo")
def test_demo_removes_its_temporary_folder(tmp_path, answer):
    pytest.importorskip("gradio")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "TMPDIR": str(tmp),
           "GRADIO_TEMP_DIR": str(tmp_path / "gradio"), "PYTHONPATH": str(REPO_ROOT)}
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "car.apps.demo", "--port", str(port)], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        deadline = time.monotonic() + 300
        while not line.startswith("car-demo: http") and time.monotonic() < deadline and proc.poll() is None:
            line = proc.stdout.readline()
        assert line.strip() == f"car-demo: http://127.0.0.1:{port}"
        assert len(list(tmp.glob("car-demo-*"))) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert proc.returncode == 0 and list(tmp.glob("car-demo-*")) == []
    answer("the URL is printed once the server owns the port; on SIGTERM or Ctrl-C its temporary folder is removed")
