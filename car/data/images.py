"""The one image reader: files, PIL images and arrays -> np.uint8 [H, W, 3] RGB, scaled, or one sentence.

Every entry point that reads a picture goes through here: the dataset loaders (car/data/common.py
`read_rgb`), the Python API, car-segment and car-demo (car/api.py `read_image`). What it does with
inputs that a plain `convert("RGB")` gets wrong:

* 16-bit greyscale (`I;16`, `I;16B`, ... PNG / TIFF) and 32-bit integer (`I`) images with values
  in 0..65535 are scaled to 0..255 (v * 255 / 65535, rounded); Pillow's own conversion clips them,
  turning almost every 16-bit picture white. `I` values outside 0..65535 are refused.
* float images (`F` TIFFs, float arrays) must hold values in [0, 1] (scaled by 255); NaN or
  infinite pixels are refused, never silently painted black.
* transparent images (RGBA, LA, palette with transparency) are composited on white.
* uint16 arrays are scaled like 16-bit files; other dtypes than uint8, uint16 and float are refused.
* a closed PIL image, an unreadable, truncated or oversized file: one sentence (CarError).

`exif=True` (photos given by a user) applies the camera's orientation tag; dataset loaders keep the
stored pixel order, which their label maps follow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from car.errors import CarError

SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I;16S")
READ_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def scale_16bit(values: np.ndarray) -> np.ndarray:
    """uint8 of 0..65535 values: v * 255 / 65535, rounded."""
    return ((values.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=2)  # [H, W, 3]


def _float_to_uint8(values: np.ndarray, what: str) -> np.ndarray:
    if not np.isfinite(values).all():
        bad = int((~np.isfinite(values)).sum())
        raise CarError(f"{what} has {bad} NaN or infinite pixel value(s): replace them (e.g. with "
                       f"numpy.nan_to_num) before segmenting.")
    low, high = float(values.min()), float(values.max())
    if low < 0 or high > 1:
        raise CarError(f"{what} is a float image with values {low:g}..{high:g}; float pixels must lie in [0, 1] "
                       f"(divide by the maximum, or convert to 8-bit).")
    return np.round(values * 255).astype(np.uint8)


def pil_to_rgb(image: Image.Image, what: str = "The image", exif: bool = False) -> np.ndarray:
    """A PIL image -> np.uint8 [H, W, 3] (see the module docstring for 16-bit, float and alpha)."""
    try:
        image.load()  # decode now: a truncated file or a closed image fails here
        if exif:
            image = ImageOps.exif_transpose(image)
        mode = image.mode
        if mode in SIXTEEN_BIT_MODES or mode == "I":
            values = np.asarray(image).astype(np.int64)  # [H, W]
            if values.size and (values.min() < 0 or values.max() > 65535):
                raise CarError(f"{what} is a 32-bit integer image with values {values.min()}..{values.max()}, "
                               f"outside 0..65535: convert it to 8- or 16-bit first.")
            return _grey_to_rgb(scale_16bit(values))
        if mode == "F":
            return _grey_to_rgb(_float_to_uint8(np.asarray(image, dtype=np.float64), what))
        if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
        return np.array(image.convert("RGB"), dtype=np.uint8)  # [H, W, 3]
    except ValueError as err:
        if "closed image" in str(err):
            raise CarError(f"{what} is closed: pass it before closing it, or open the file again.") \
                from None
        raise


def array_to_rgb(array: np.ndarray, what: str = "The image array") -> np.ndarray:
    """[H, W], [H, W, 1], [H, W, 3] or [H, W, 4] uint8 / uint16 / float in [0, 1] -> np.uint8 [H, W, 3]."""
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    if a.ndim != 3 or a.shape[2] not in (3, 4) or 0 in a.shape:
        raise CarError(f"{what} must be [H, W, 3] (RGB), [H, W, 4] or [H, W], got shape {list(a.shape)}.")
    a = a[..., :3]
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if a.dtype == np.uint16:
        return scale_16bit(a)
    if np.issubdtype(a.dtype, np.floating):
        return _float_to_uint8(a.astype(np.float64), what)
    raise CarError(f"{what} must be uint8 (0-255), uint16 (0-65535) or float in [0, 1], got {a.dtype}.")


def read_image_file(path: str | Path, exif: bool = False, fix: str = "check or replace the file") -> np.ndarray:
    """An image file -> np.uint8 [H, W, 3], fully decoded; CarError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise CarError(f"Image file {path} does not exist: {fix}.")
    try:
        with Image.open(path) as image:
            return pil_to_rgb(image, what=f"Image file {path}", exif=exif)
    except CarError:
        raise
    except READ_ERRORS as err:
        why = (str(err).splitlines()[0] if str(err) else type(err).__name__).replace(f" '{path}'", "")
        raise CarError(f"Image file {path} is corrupt or truncated, or not an image ({why}): {fix}.") from None
