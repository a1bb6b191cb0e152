"""Fuzzing the image/label readers and the VOC loader: any bytes give a valid sample or CarError."""

import io
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from car.data.common import read_label, read_rgb
from car.data.voc import VOCSegmentation
from car.errors import CarError
from tests.conftest import VOC_ROOT, require_shared_data

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _png_bytes(array: np.ndarray, mode: str) -> bytes:
    buf = io.BytesIO()
    image = Image.fromarray(array)  # mode L
    if mode == "P":  # a full 256-entry palette, as VOC's label PNGs have: indices are stored as-is
        image.putpalette([(i * 37) % 256 for i in range(768)])
    image.save(buf, format="PNG")
    return buf.getvalue()


def _real_jpeg() -> bytes:
    require_shared_data()
    return (VOC_ROOT / "JPEGImages" / "2007_000033.jpg").read_bytes()


@FUZZ
@given(data=st.binary(max_size=4096))
def test_read_rgb_random_bytes(tmp_path, data):
    path = tmp_path / "x.jpg"
    path.write_bytes(data)
    try:
        image = read_rgb(path)
    except CarError as err:
        assert str(path) in str(err)
    else:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


@FUZZ
@given(cut=st.integers(min_value=0, max_value=20000), flips=st.lists(st.integers(0, 20000), max_size=8))
def test_read_rgb_mutated_real_jpeg(tmp_path, cut, flips):
    data = bytearray(_real_jpeg())
    for i in flips:
        data[i % len(data)] ^= 0xFF
    path = tmp_path / "m.jpg"
    path.write_bytes(bytes(data[: len(data) - cut]))
    try:
        image = read_rgb(path)
    except CarError:
        return
    assert image.dtype == np.uint8 and image.shape[2] == 3


@FUZZ
@given(values=st.lists(st.integers(0, 255), min_size=16, max_size=16), mode=st.sampled_from(["L", "P"]))
def test_read_label_values(tmp_path, values, mode):
    array = np.array(values, np.uint8).reshape(4, 4)
    path = tmp_path / "l.png"
    path.write_bytes(_png_bytes(array, mode))
    bad = sorted({v for v in values if v >= 21 and v != 255})
    if bad:
        with pytest.raises(CarError, match="l.png"):
            read_label(path, 21)
    else:
        np.testing.assert_array_equal(read_label(path, 21), array)


@FUZZ
@given(data=st.binary(max_size=2048))
def test_voc_loader_with_fuzzed_label(tmp_path, data):
    require_shared_data()
    root = tmp_path / "VOC2012"
    if not root.exists():
        for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
            (root / sub).mkdir(parents=True)
        shutil.copy(VOC_ROOT / "JPEGImages" / "2007_000033.jpg", root / "JPEGImages")
        (root / "ImageSets" / "Segmentation" / "val.txt").write_text("2007_000033\n")
    (root / "SegmentationClass" / "2007_000033.png").write_bytes(data)
    try:
        sample = VOCSegmentation(str(root), "val")[0]
    except CarError as err:
        assert "2007_000033" in str(err)
    else:
        assert sample["target"].shape == sample["image"].shape[:2]
