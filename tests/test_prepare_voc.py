"""Tests for datasets/voc/prepare.py (extract + verify Pascal VOC 2012).

`datasets/` is deliberately not a Python package (it would shadow HuggingFace `datasets`), so the
script is loaded from its file path. Shared sample data is only ever copied into tmp_path.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tarfile
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import SHARED_DATA, load_script, needs_shared_data, run_script

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "datasets" / "voc" / "prepare.py"
SAMPLE_VOC = SHARED_DATA / "VOCdevkit" / "VOC2012"

needs_sample = needs_shared_data()


prepare = load_script(SCRIPT, "car_voc_prepare")


run_main = partial(run_script, prepare)  # (argv, capsys) -> (exit code, stdout, stderr)


@pytest.fixture
def sample_root(tmp_path):
    """A copy of the shared sample tree: <tmp>/data/VOCdevkit/VOC2012."""
    data_root = tmp_path / "data"
    shutil.copytree(SAMPLE_VOC, data_root / "VOCdevkit" / "VOC2012")
    return data_root


def _val_ids(voc: Path) -> list[str]:
    return [s for s in (voc / "ImageSets" / "Segmentation" / "val.txt").read_text().split() if s]


@needs_sample
def test_sample_tree_is_refused_as_incomplete_without_allow_subset(capsys):
    code, out, err = run_main(["--data-root", SHARED_DATA, "--verify-only"], capsys)
    assert code == 1
    assert out == ""
    assert "VOC2012 val is incomplete" in err
    assert f"lists {len(_val_ids(SAMPLE_VOC))} of 1449 ids" in err
    assert "--allow-subset" in err and "VOCtrainval_11-May-2012.tar" in err
    assert len(err.strip().splitlines()) == 1


@needs_sample
def test_sample_tree_passes_with_allow_subset(capsys):
    code, out, err = run_main(["--data-root", SHARED_DATA, "--verify-only", "--allow-subset"], capsys)
    assert code == 0, err
    n = len(_val_ids(SAMPLE_VOC))
    assert out.startswith("OK: Pascal VOC 2012") and f"val {n} ids ({n} labels checked)" in out
    assert len(out.strip().splitlines()) == 1


@needs_sample
def test_sample_option_limits_decoded_labels(sample_root, capsys):
    code, out, err = run_main(["--data-root", sample_root, "--allow-subset", "--sample", "2"], capsys)
    assert code == 0, err
    assert "(2 labels checked)" in out


@needs_sample
def test_corrupted_label_value_is_named(sample_root, capsys):
    voc = sample_root / "VOCdevkit" / "VOC2012"
    victim = voc / "SegmentationClass" / f"{_val_ids(voc)[1]}.png"
    with Image.open(victim) as im:
        palette, arr = im.getpalette(), np.array(im)
    arr[0, 0] = 30
    out_im = Image.fromarray(arr, mode="P")
    out_im.putpalette(palette)
    out_im.save(victim)

    code, out, err = run_main(["--data-root", sample_root, "--verify-only", "--allow-subset"], capsys)
    assert code == 1
    assert str(victim) in err and "[30]" in err
    assert len(err.strip().splitlines()) == 1


@needs_sample
def test_rgb_label_is_refused(sample_root, capsys):
    voc = sample_root / "VOCdevkit" / "VOC2012"
    victim = voc / "SegmentationClass" / f"{_val_ids(voc)[0]}.png"
    with Image.open(victim) as im:
        im.convert("RGB").save(victim)
    code, _, err = run_main(["--data-root", sample_root, "--allow-subset"], capsys)
    assert code == 1 and str(victim) in err and "'RGB'" in err


@needs_sample
def test_size_mismatch_is_refused(sample_root, capsys):
    voc = sample_root / "VOCdevkit" / "VOC2012"
    victim = voc / "SegmentationClass" / f"{_val_ids(voc)[0]}.png"
    with Image.open(victim) as im:
        im.crop((0, 0, 10, 10)).save(victim)
    code, _, err = run_main(["--data-root", sample_root, "--allow-subset"], capsys)
    assert code == 1 and str(victim) in err and "10x10" in err


@needs_sample
def test_missing_jpeg_is_named(sample_root, capsys):
    voc = sample_root / "VOCdevkit" / "VOC2012"
    ids = _val_ids(voc)
    (voc / "JPEGImages" / f"{ids[2]}.jpg").unlink()
    code, _, err = run_main(["--data-root", sample_root, "--verify-only", "--allow-subset"], capsys)
    assert code == 1
    assert f"VOC2012 val is incomplete: 1 of {len(ids)} images missing under {voc / 'JPEGImages'}" in err
    assert f"(first: {ids[2]}.jpg)" in err


@needs_sample
def test_missing_split_file_and_missing_tree(sample_root, tmp_path, capsys):
    (sample_root / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation" / "train.txt").unlink()
    code, _, err = run_main(["--data-root", sample_root, "--allow-subset"], capsys)
    assert code == 1 and "train.txt" in err and "incomplete" in err

    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_main(["--data-root", empty, "--verify-only"], capsys)
    assert code == 1 and "not found" in err and "VOCdevkit" in err


def test_tar_with_path_traversal_is_refused(tmp_path, capsys):
    tar_path = tmp_path / "evil.tar"
    with tarfile.open(tar_path, "w") as tar:
        for name in ("VOCdevkit/VOC2012/ok.txt", "../evil"):
            payload = b"pwned\n"
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    target = tmp_path / "sub" / "target"
    code, _, err = run_main(["--tar", tar_path, "--data-root", target, "--skip-md5"], capsys)
    assert code == 1
    assert "'../evil'" in err and "unsafe" in err
    assert not (tmp_path / "sub" / "evil").exists() and not (tmp_path / "evil").exists()
    assert not target.exists()  # nothing extracted at all


def test_tar_with_escaping_symlink_is_refused(tmp_path, capsys):
    tar_path = tmp_path / "link.tar"
    with tarfile.open(tar_path, "w") as tar:
        info = tarfile.TarInfo("VOCdevkit/link")
        info.type, info.linkname = tarfile.SYMTYPE, "../../etc"
        tar.addfile(info)
    code, _, err = run_main(["--tar", tar_path, "--data-root", tmp_path / "t", "--skip-md5"], capsys)
    assert code == 1 and "VOCdevkit/link" in err and not (tmp_path / "t").exists()


@needs_sample
def test_extract_and_verify_end_to_end(tmp_path, capsys):
    tar_path = tmp_path / "VOCtrainval_11-May-2012.tar"
    with tarfile.open(tar_path, "w") as tar:
        tar.add(SAMPLE_VOC, arcname="VOCdevkit/VOC2012")
    data_root = tmp_path / "data"

    # the tiny tar is not the official file: md5 check must refuse it, extracting nothing
    code, _, err = run_main(["--tar", tar_path, "--data-root", data_root, "--allow-subset"], capsys)
    assert code == 1 and "md5 mismatch" in err and not data_root.exists()

    code, out, err = run_main(
        ["--tar", tar_path, "--data-root", data_root, "--skip-md5", "--allow-subset"], capsys
    )
    assert code == 0, err
    assert out.startswith("OK: Pascal VOC 2012") and f"paths.data_root={data_root}" in out
    voc = data_root / "VOCdevkit" / "VOC2012"
    assert sorted(p.name for p in (voc / "JPEGImages").iterdir()) == sorted(
        p.name for p in (SAMPLE_VOC / "JPEGImages").iterdir()
    )


@needs_sample
def test_cli_subprocess_exit_codes():
    base = [sys.executable, str(SCRIPT), "--data-root", str(SHARED_DATA), "--verify-only"]
    bad = subprocess.run(base, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "VOC2012 val is incomplete" in bad.stderr
    good = subprocess.run(base + ["--allow-subset"], capture_output=True, text=True, timeout=60)
    assert good.returncode == 0 and good.stdout.startswith("OK:")


def test_datasets_is_not_a_package():
    assert not (REPO / "datasets" / "__init__.py").exists()
    assert not (REPO / "datasets" / "voc" / "__init__.py").exists()
