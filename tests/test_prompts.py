"""Visual prompts (CAR_SPEC §4)."""

import numpy as np
import pytest

from car.methods.car.prompts import VisualPrompt


@pytest.fixture
def textured():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)


def square_map(h=60, w=80, top=20, left=30, size=20, value=0.9):
    m = np.zeros((h, w), np.float32)
    m[top : top + size, left : left + size] = value
    return m


def test_tiny_map_returns_untouched_image(textured):
    m = np.zeros((60, 80), np.float32)
    m[0, 0] = 1.0  # soft sum <= 1
    assert VisualPrompt(["circle", "blur"], 0.4)(textured, m) is textured


def test_empty_binary_mask_with_mass_returns_untouched_image(textured):
    m = np.full((60, 80), 0.3, np.float32)  # sum > 1 but nothing > η (Q10)
    assert VisualPrompt(["circle"], 0.4)(textured, m) is textured


def test_blur_keeps_mask_sharp_and_blurs_outside(textured):
    out = VisualPrompt(["blur"], 0.4)(textured, square_map())
    inside = (slice(20, 40), slice(30, 50))
    np.testing.assert_array_equal(out[inside], textured[inside])
    assert np.abs(out[:10].astype(int) - textured[:10]).mean() > 20  # noise is smoothed away
    assert out[:10].std() < textured[:10].std() / 2


def test_circle_is_red_one_pixel_ellipse_around_centroid(textured):
    image = np.zeros((60, 80, 3), np.uint8)
    out = VisualPrompt(["circle"], 0.4)(image, square_map())
    red = (out == [255, 0, 0]).all(-1)
    # centroid = (39, 29) (int of 39.5, 29.5), semi-axes = (10, 10)
    assert red[29, 49] and red[29, 29] and red[19, 39] and red[39, 39]
    assert not red[29, 39]  # thickness 1: the centre is untouched
    assert (out[~red] == 0).all()


def test_gray_official_swaps_red_and_blue_weights():
    image = np.zeros((60, 80, 3), np.uint8)
    image[..., 0] = 200  # pure red
    m = square_map()
    official = VisualPrompt(["gray"], 0.4, gray_weights="official")(image, m)
    rgb = VisualPrompt(["gray"], 0.4, gray_weights="rgb")(image, m)
    assert official[0, 0, 0] == round(0.114 * 200) and rgb[0, 0, 0] == round(0.299 * 200)
    assert (official[25, 35] == [200, 0, 0]).all()  # inside the mask colour is kept


def test_black_and_fixed_order(textured):
    m = square_map()
    a = VisualPrompt(["circle", "blur"], 0.4)(textured, m)
    b = VisualPrompt(["blur", "circle"], 0.4)(textured, m)
    np.testing.assert_array_equal(a, b)  # applied in the fixed order blur -> circle
    black = VisualPrompt(["black"], 0.4)(textured, m)
    assert black[:20].max() == 0 and (black[20:40, 30:50] == textured[20:40, 30:50]).all()


def test_rectangle_and_contour_draw_red(textured):
    m = square_map()
    for kind in ("rectangle", "contour"):
        out = VisualPrompt([kind], 0.4)(np.zeros_like(textured), m)
        assert (out == [255, 0, 0]).all(-1).sum() > 40


def test_unknown_prompt_type():
    with pytest.raises(ValueError, match="Unknown visual prompt"):
        VisualPrompt(["sparkles"], 0.4)


def test_gray_matches_opencv_fixed_point_conversion_exactly():
    """Q11 as the official code computes it: OpenCV's fixed-point BGR->grey on the RGB array
    (15-bit weights 3735, 9798 for blue and red, 19235 for green, +2^14, shift). Rounding the float
    formula instead differs by one grey level on some pixels, which this sample contains."""
    import cv2

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)
    m = np.zeros((200, 300), np.float32)
    m[:10, :10] = 1.0  # a small mask: almost every pixel turns grey
    outside = m == 0
    c = image.astype(np.int64)
    for weights, (w0, w2), code in (("official", (3735, 9798), cv2.COLOR_BGR2GRAY),
                                    ("rgb", (9798, 3735), cv2.COLOR_RGB2GRAY)):
        expected = (c[..., 0] * w0 + c[..., 1] * 19235 + c[..., 2] * w2 + (1 << 14)) >> 15
        np.testing.assert_array_equal(expected, cv2.cvtColor(image, code))  # what OpenCV computes
        out = VisualPrompt(["gray"], 0.4, gray_weights=weights)(image, m)
        np.testing.assert_array_equal(out[outside], np.repeat(expected[outside][:, None], 3, axis=1))
        floats = np.round(0.114 * c[..., 0] + 0.587 * c[..., 1] + 0.299 * c[..., 2]) if weights == "official" \
            else np.round(0.299 * c[..., 0] + 0.587 * c[..., 1] + 0.114 * c[..., 2])
        assert (floats != expected).any()  # the sample does tell the two roundings apart
