"""car/outputs.py: checked output folders, atomic writes, no silent replacement, ids as paths (issue #25)."""

from __future__ import annotations

import errno
import json
import math
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from PIL import Image

from car.errors import CarError
from car.outputs import (
    atomic_write,
    check_output_dir,
    id_path,
    refuse_existing,
    save_image,
    strict_json,
    write_json,
    write_text,
)
from tests.conftest import REPO
from tests.fs_faults import inject_write_error, run_with_mount


def files_in(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_atomic_write_replaces_whole_files_and_leaves_no_temporary(tmp_path):
    path = write_text(tmp_path / "a" / "b.txt", "first")
    assert path.read_text() == "first" and files_in(tmp_path) == ["a/b.txt"]
    write_text(path, "second")
    assert path.read_text() == "second" and files_in(tmp_path) == ["a/b.txt"]


@pytest.mark.bad_input("a write interrupted half-way (an exception in the writer)", "every output file")
def test_interrupted_write_keeps_the_earlier_file(tmp_path, answer):
    path = write_text(tmp_path / "metrics.json", "earlier")

    def half(f):
        f.write(b"{\"miou\": 1")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, half)
    assert path.read_text() == "earlier" and files_in(tmp_path) == ["metrics.json"]
    answer("the earlier file is kept whole, no temporary file is left")


@pytest.mark.bad_input("the process killed (SIGKILL) in the middle of a write", "every output file")
def test_killed_writer_leaves_no_half_file_under_the_real_name(tmp_path, answer):
    target = tmp_path / "overlay.png"
    target.write_bytes(b"earlier")
    child = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from car.outputs import atomic_write
        def slow(f):
            for _ in range(1000):
                f.write(b"x" * 4096); f.flush(); time.sleep(0.01)
        atomic_write({str(target)!r}, slow)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child])
    deadline = time.time() + 60
    while not list(tmp_path.glob(".overlay.png.*.tmp")) and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert target.read_bytes() == b"earlier"  # a torn temporary may remain; the real name is untouched
    answer("the real file keeps its earlier content; only a .tmp file may remain, never read")


@pytest.mark.bad_input("a full disk at the write (ENOSPC injected)", "every output file")
def test_full_disk_is_one_sentence_and_no_partial_file(tmp_path, monkeypatch, answer):
    inject_write_error(monkeypatch, errno.ENOSPC)
    with pytest.raises(CarError) as err:
        save_image(Image.new("RGB", (64, 64)), tmp_path / "x_overlay.png")
    assert str(err.value) == f"Cannot write {tmp_path / 'x_overlay.png'}: the disk is full; free some space or " \
                             f"choose another output folder."
    assert files_in(tmp_path) == []
    answer(str(err.value))


@pytest.mark.bad_input("a full disk (a 64 KB tmpfs), a real file system", "every output file")
def test_full_tmpfs_is_one_sentence_and_no_partial_file(tmp_path, answer):
    mount = tmp_path / "disk"
    child = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        import numpy as np
        from PIL import Image
        from car.errors import CarError
        from car.outputs import save_image
        noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8))
        try:
            save_image(noise, {str(mount / "big.png")!r})
        except CarError as err:
            print(err)
        import os
        print(sorted(os.listdir({str(mount)!r})))
    """)
    done = run_with_mount([sys.executable, "-c", child], mount, "size=64k")
    assert done.returncode == 0, done.stderr
    sentence, listing = done.stdout.strip().splitlines()
    assert sentence == f"Cannot write {mount / 'big.png'}: the disk is full; free some space or choose another " \
                       f"output folder."
    assert listing == "[]"  # neither the PNG nor its temporary file
    answer(sentence)


@pytest.mark.bad_input("an output folder on a read-only file system (read-only tmpfs)", "every output folder")
def test_read_only_folder_is_found_before_anything_runs(tmp_path, answer):
    mount = tmp_path / "ro"
    child = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from car.outputs import check_output_dir
        check_output_dir({str(mount / "seg")!r}, "--out")
    """)
    done = run_with_mount([sys.executable, "-c", child], mount, "ro,size=16k")
    assert done.returncode == 1 and "CarError: Cannot write into --out" in done.stderr
    sentence = done.stderr.strip().splitlines()[-1].removeprefix("car.errors.CarError: ")
    assert "the file system is read-only" in sentence
    answer(sentence)


@pytest.mark.bad_input("an output folder that refuses writes (EROFS injected)", "every output folder")
def test_read_only_injected(tmp_path, monkeypatch, answer):
    inject_write_error(monkeypatch, errno.EROFS, where="open")
    with pytest.raises(CarError, match="the file system is read-only") as err:
        check_output_dir(tmp_path / "out", "--out")
    answer(str(err.value))


@pytest.mark.bad_input("an output folder path that is a file", "every output folder")
def test_output_folder_that_is_a_file(tmp_path, answer):
    (tmp_path / "out").write_text("")
    with pytest.raises(CarError, match="is a file, not a folder") as err:
        check_output_dir(tmp_path / "out", "--out")
    answer(str(err.value))


def test_no_silent_replacement(tmp_path):
    first = write_text(tmp_path / "r.json", "1", overwrite=False)
    with pytest.raises(CarError, match="already exists; nothing was replaced"):
        write_text(first, "2", overwrite=False)
    assert first.read_text() == "1" and files_in(tmp_path) == ["r.json"]
    with pytest.raises(CarError, match=r"1 output file\(s\) already exist, e.g. .*r.json; nothing was replaced: "
                                       r"pass --overwrite"):
        refuse_existing([first, tmp_path / "new.png"], "pass --overwrite to replace them")
    refuse_existing([tmp_path / "new.png"], "unused")


@pytest.mark.parametrize("bad", [
    pytest.param("../escape", marks=pytest.mark.bad_input("a sample id with '..' (would leave the folder)",
                                                         "overlays, predictions")),
    pytest.param("/etc/passwd", marks=pytest.mark.bad_input("an absolute sample id", "overlays, predictions")),
    pytest.param("", marks=pytest.mark.bad_input("an empty sample id", "overlays, predictions")),
])
def test_ids_that_leave_the_folder_are_refused(tmp_path, bad, answer):
    with pytest.raises(CarError, match="cannot name an output file") as err:
        id_path(tmp_path, bad, ".png")
    answer(str(err.value))


def test_ids_with_slashes_are_sub_folders(tmp_path):
    path = id_path(tmp_path, "frankfurt/frankfurt_000000_000294", ".png")
    assert path == tmp_path / "frankfurt" / "frankfurt_000000_000294.png"
    save_image(Image.new("RGB", (4, 4)), path)
    assert files_in(tmp_path) == ["frankfurt/frankfurt_000000_000294.png"]


def test_metrics_json_is_strict():
    text = strict_json({"miou": float("nan"), "per_class": [1.0, float("inf")], "n": 3})
    assert json.loads(text) == {"miou": None, "per_class": [1.0, None], "n": 3}
    assert "NaN" not in text and "Infinity" not in text


def test_write_json_refuses_nothing_valid(tmp_path):
    path = write_json(tmp_path / "m.json", {"a": math.nan, "b": np.float64(2.5).item()})
    assert json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-strict {c}")) == {"a": None,
                                                                                                     "b": 2.5}
