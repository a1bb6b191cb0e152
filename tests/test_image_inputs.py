"""The one image reader (car/data/images.py): 16-bit and float images scaled or refused, NaN refused, a
closed PIL image named, for the dataset loaders, the Python API, car-segment and car-demo (issue #25)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from car.api import read_image
from car.data.common import read_rgb
from car.data.images import scale_16bit
from car.errors import CarError


@pytest.fixture
def png16(tmp_path):
    """A real 16-bit greyscale PNG ('I;16'): a ramp over 0..65535 (the left half dark, the right half bright)."""
    ramp = np.linspace(0, 65535, 64 * 48).round().astype(np.uint16).reshape(48, 64)
    path = tmp_path / "depth16.png"
    Image.fromarray(ramp).save(path)
    with Image.open(path) as check:
        assert check.mode == "I;16"  # Pillow reads it back as 16-bit
    return path, ramp


def expected(ramp: np.ndarray) -> np.ndarray:
    grey = np.round(ramp.astype(np.float64) * 255 / 65535).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


@pytest.mark.bad_input("a 16-bit greyscale PNG (mode I;16)", "dataset loaders, API, car-segment, car-demo")
def test_16bit_png_is_scaled_not_white(png16, answer):
    path, ramp = png16
    for rgb in (read_rgb(path), read_image(path), read_image(Image.open(path)), read_image(ramp)):
        assert rgb.dtype == np.uint8 and rgb.shape == (48, 64, 3)
        np.testing.assert_array_equal(rgb, expected(ramp))
    assert (read_image(path) == 255).mean() < 0.01  # convert("RGB") made 99 % of it white
    answer("read: scaled to 0..255 (v * 255 / 65535), as 8-bit RGB")


def test_scaling_keeps_the_ends():
    assert scale_16bit(np.array([0, 257, 32768, 65535], np.uint16)).tolist() == [0, 1, 128, 255]


def test_32bit_integer_images(tmp_path):
    values = np.array([[0, 65535], [1000, 40000]], dtype=np.int32)
    Image.fromarray(values).save(tmp_path / "i.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "i.tif")[..., 0], scale_16bit(values))
    Image.fromarray(np.array([[0, 70000]], dtype=np.int32)).save(tmp_path / "big.tif")
    with pytest.raises(CarError, match=r"32-bit integer image with values 0..70000, outside 0..65535"):
        read_image(tmp_path / "big.tif")


def test_float_images_in_0_1_are_scaled(tmp_path):
    values = np.array([[0.0, 0.5], [1.0, 0.25]], dtype=np.float32)
    Image.fromarray(values).save(tmp_path / "f.tif")
    for rgb in (read_image(tmp_path / "f.tif"), read_image(values), read_rgb(tmp_path / "f.tif")):
        assert rgb[..., 0].tolist() == [[0, 128], [255, 64]]


@pytest.mark.bad_input("a float image with values outside [0, 1]", "dataset loaders, API, car-segment, car-demo")
def test_float_images_outside_0_1_are_refused(tmp_path, answer):
    Image.fromarray(np.array([[0.0, 3.5]], dtype=np.float32)).save(tmp_path / "hdr.tif")
    with pytest.raises(CarError, match=r"float image with values 0..3.5; float pixels must lie in \[0, 1\]") as err:
        read_rgb(tmp_path / "hdr.tif")
    answer(str(err.value))


@pytest.mark.bad_input("NaN pixels (float array or float TIFF)", "dataset loaders, API, car-segment, car-demo")
def test_nan_pixels_are_refused_not_black(tmp_path, answer):
    array = np.full((8, 8, 3), 0.5)
    array[2, 3] = np.nan
    with pytest.raises(CarError, match=r"has 3 NaN or infinite pixel value\(s\): replace them") as err:
        read_image(array)
    Image.fromarray(np.where(np.eye(4, dtype=bool), np.nan, 0.5).astype(np.float32)).save(tmp_path / "nan.tif")
    with pytest.raises(CarError, match=r"nan.tif has 4 NaN or infinite pixel value\(s\)"):
        read_image(tmp_path / "nan.tif")
    answer(str(err.value))


@pytest.mark.bad_input("an int64 array", "API")
def test_other_array_types_are_refused(answer):
    with pytest.raises(CarError, match="must be uint8 \\(0-255\\), uint16 \\(0-65535\\) or float in \\[0, 1\\], "
                                      "got int64") as err:
        read_image(np.zeros((4, 4, 3), np.int64))
    answer(str(err.value))


@pytest.mark.bad_input("a closed PIL image", "API")
def test_closed_pil_image_is_one_sentence(png16, answer):
    image = Image.open(png16[0])
    image.close()
    with pytest.raises(CarError) as err:
        read_image(image)
    assert str(err.value) == "The PIL image is closed: pass it before closing it, or open the file again."
    answer(str(err.value))


def test_transparent_and_palette_images(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red; the rest fully transparent
    Image.fromarray(rgba).save(tmp_path / "a.png")
    rgb = read_rgb(tmp_path / "a.png")
    assert rgb[0, 0].tolist() == [255, 0, 0] and rgb[1, 1].tolist() == [255, 255, 255]  # on white
    Image.fromarray(np.array([[0, 1]], np.uint8), "P").save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png").shape == (1, 2, 3)
