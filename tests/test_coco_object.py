"""COCO-Object: loader (car.data.coco_object) and conversion script (datasets/coco_object/prepare.py).

The real sample in shared/data/coco holds COCO-Stuff-style maps and the expected GroupViT outputs;
inputs are only ever copied into tmp_path. ``datasets/`` is not a package, so the script is loaded
from its file path.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from car.data.coco_object import COCOObject
from car.errors import CarError
from tests.conftest import SHARED_DATA, load_script, needs_shared_data, run_script

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "datasets" / "coco_object" / "prepare.py"
SAMPLE = SHARED_DATA / "coco"
IDS = ["000000039769", "000000142238", "000000439180"]

needs_sample = needs_shared_data("coco/images/val2017")


prepare = load_script(SCRIPT, "car_coco_object_prepare")


run_main = partial(run_script, prepare)  # (argv, capsys) -> (exit code, stdout, stderr)


@pytest.fixture
def raw_tree(tmp_path):
    """tmp copy of the sample: images + COCO-Stuff maps only (no converted labels)."""
    root = tmp_path / "coco"
    (root / "images" / "val2017").mkdir(parents=True)
    (root / "annotations" / "val2017").mkdir(parents=True)
    for i in IDS:
        shutil.copy(SAMPLE / "images" / "val2017" / f"{i}.jpg", root / "images" / "val2017")
        shutil.copy(SAMPLE / "annotations" / "val2017" / f"{i}.png", root / "annotations" / "val2017")
    return root


@pytest.fixture
def converted_tree(raw_tree):
    for i in IDS:
        shutil.copy(SAMPLE / "annotations" / "val2017" / f"{i}_instanceTrainIds.png",
                    raw_tree / "annotations" / "val2017")
    return raw_tree


# ---------------------------------------------------------------------------------- mapping table


@needs_sample
def test_thing_ids_are_the_80_coco_categories_in_order():
    categories = json.loads((SAMPLE / "annotations" / "instances_val2017.json").read_text())["categories"]
    assert list(prepare.COCO_THING_IDS) == [c["id"] for c in categories]
    names = (SHARED_DATA / "class_names" / "car" / "coco_object.txt").read_text().splitlines()
    assert len([n for n in names if n.strip()]) == 80


def test_lut_maps_things_to_1_80_and_everything_else_to_0():
    lut = prepare.stuff_to_object_lut()
    assert lut[0] == 1  # person (COCO id 1 -> PNG value 0)
    assert lut[54] == 50  # orange (COCO id 55), line 50 of coco_object.txt
    assert lut[89] == 80  # toothbrush (COCO id 90)
    assert lut[11] == 0  # COCO id 12 (street sign) is unused
    assert set(np.unique(lut[:90]).tolist()) == set(range(81))
    assert not lut[90:].any()  # stuff 92..182 (values 91..181), 255 and the rest -> 0
    stuff = np.array([[0, 11, 89, 90], [91, 181, 255, 12]], dtype=np.uint8)
    assert prepare.convert_stuff_map(stuff).tolist() == [[1, 0, 80, 0], [0, 0, 0, 12]]  # 12 = COCO id 13 (stop sign)


def test_convert_rejects_values_that_are_not_coco_stuff():
    with pytest.raises(ValueError, match="not COCO-Stuff labels"):
        prepare.convert_stuff_map(np.array([[0, 200]], dtype=np.uint8))


@needs_sample
@pytest.mark.parametrize("image_id", IDS)
def test_conversion_of_real_sample_equals_expected_output(image_id, tmp_path):
    src = tmp_path / f"{image_id}.png"
    shutil.copy(SAMPLE / "annotations" / "val2017" / f"{image_id}.png", src)
    dst = tmp_path / f"{image_id}_instanceTrainIds.png"
    prepare.convert_file(src, dst)
    with Image.open(dst) as im:
        assert im.mode == "L"
        got = np.array(im)
    expected = np.array(Image.open(SAMPLE / "annotations" / "val2017" / f"{image_id}_instanceTrainIds.png"))
    assert np.array_equal(got, expected)


# ------------------------------------------------------------------------------------- the script


@needs_sample
def test_prepare_converts_and_verifies_subset(raw_tree, capsys):
    code, out, err = run_main(["--root", raw_tree, "--allow-subset"], capsys)
    assert code == 0, err
    assert out.startswith("OK: COCO-Object val2017") and "3 images" in out
    for i in IDS:
        got = np.array(Image.open(raw_tree / "annotations" / "val2017" / f"{i}_instanceTrainIds.png"))
        want = np.array(Image.open(SAMPLE / "annotations" / "val2017" / f"{i}_instanceTrainIds.png"))
        assert np.array_equal(got, want)
    assert not list((raw_tree / "annotations" / "val2017").glob("*.tmp"))


@needs_sample
def test_partial_tree_is_refused_without_allow_subset(raw_tree, capsys):
    code, out, err = run_main(["--root", raw_tree], capsys)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "3 of 5000 images" in err and "--allow-subset" in err
    assert not list((raw_tree / "annotations" / "val2017").glob("*_instanceTrainIds.png"))


@needs_sample
def test_verify_only_reports_missing_conversion(raw_tree, capsys):
    code, _, err = run_main(["--root", raw_tree, "--verify-only", "--allow-subset"], capsys)
    assert code == 1 and "3 of 3 missing" in err and "prepare.py" in err


@needs_sample
def test_missing_stuff_map_is_named(raw_tree, capsys):
    (raw_tree / "annotations" / "val2017" / f"{IDS[1]}.png").unlink()
    code, _, err = run_main(["--root", raw_tree, "--allow-subset"], capsys)
    assert code == 1 and f"{IDS[1]}.png is missing" in err and "stuffthingmaps_trainval2017.zip" in err


def test_missing_root_exits_1(tmp_path, capsys):
    code, _, err = run_main(["--root", tmp_path / "nope", "--verify-only"], capsys)
    assert code == 1 and "images/val2017 does not exist" in err


@needs_sample
def test_zip_extraction_keeps_only_val2017(tmp_path, capsys):
    import zipfile

    zips = tmp_path / "zips"
    zips.mkdir()
    with zipfile.ZipFile(zips / "val2017.zip", "w") as zf:
        for i in IDS:
            zf.write(SAMPLE / "images" / "val2017" / f"{i}.jpg", f"val2017/{i}.jpg")
    with zipfile.ZipFile(zips / "stuffthingmaps_trainval2017.zip", "w") as zf:
        for i in IDS:
            zf.write(SAMPLE / "annotations" / "val2017" / f"{i}.png", f"val2017/{i}.png")
        zf.writestr("train2017/000000000009.png", b"unused")
    root = tmp_path / "coco"
    code, out, err = run_main(
        ["--root", root, "--images-zip", zips / "val2017.zip", "--stuff-zip", zips / "stuffthingmaps_trainval2017.zip",
         "--allow-subset"], capsys)
    assert code == 0, err
    assert not (root / "annotations" / "train2017").exists()
    assert len(COCOObject(root)) == 3


def test_unsafe_zip_member_is_refused(tmp_path, capsys):
    import zipfile

    bad = tmp_path / "val2017.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("val2017/../../evil.jpg", b"x")
    code, _, err = run_main(["--root", tmp_path / "coco", "--images-zip", bad, "--allow-subset"], capsys)
    assert code == 1 and "unsafe path" in err
    assert not (tmp_path / "evil.jpg").exists()


@needs_sample
def test_script_runs_as_subprocess(converted_tree):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--root", str(converted_tree), "--verify-only"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stderr.startswith("error: COCO val2017 is incomplete")


# ------------------------------------------------------------------------------------------ loader


@needs_sample
def test_loader_reads_real_sample(converted_tree):
    ds = COCOObject(converted_tree)
    assert ds.ids == IDS  # sorted directory listing (Q33)
    sample = ds[0]
    assert sample["image_id"] == IDS[0]
    assert sample["image"].dtype == np.uint8 and sample["image"].shape == (480, 640, 3)
    assert sample["target"].dtype == np.int64 and sample["target"].shape == (480, 640)
    assert set(np.unique(sample["target"]).tolist()) == {0, 16, 58, 60, 66}
    assert set(np.unique(ds[2]["target"]).tolist()) == {0, 1, 8, 18}
    assert len(COCOObject(converted_tree, limit=2)) == 2


@needs_sample
def test_loader_works_on_shared_sample_in_place():
    ds = COCOObject(SAMPLE)  # read-only use; the derived labels are already there
    assert len(ds) == 3 and set(np.unique(ds[1]["target"]).tolist()) == {0, 1, 33}


def test_loader_missing_root(tmp_path):
    with pytest.raises(CarError, match=r"images/val2017 does not exist.*datasets/coco_object/README.md"):
        COCOObject(tmp_path / "missing")


@needs_sample
def test_loader_missing_label_file(raw_tree):
    missing = r"3 of 3 COCO-Object label file\(s\) are missing.*datasets/coco_object/README.md"
    with pytest.raises(CarError, match=missing):
        COCOObject(raw_tree)


@needs_sample
def test_loader_label_value_out_of_range(converted_tree):
    path = converted_tree / "annotations" / "val2017" / f"{IDS[0]}_instanceTrainIds.png"
    label = np.array(Image.open(path))
    label[0, 0] = 81
    Image.fromarray(label, mode="L").save(path)
    ds = COCOObject(converted_tree)
    with pytest.raises(CarError, match="values 81 outside the 81 classes"):
        ds[0]


def test_loader_rejects_bad_limit(tmp_path):
    (tmp_path / "images" / "val2017").mkdir(parents=True)
    (tmp_path / "annotations" / "val2017").mkdir(parents=True)
    with pytest.raises(CarError, match="limit must be a positive integer"):
        COCOObject(tmp_path, limit=0)
