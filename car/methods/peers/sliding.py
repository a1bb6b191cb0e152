"""Input geometry shared by the peers: short-side resize, patch padding, sliding windows.

The peers' evaluation (mmseg test pipelines of their official code):
  1. resize the image, keeping its aspect ratio, so that the short side is `short_side` and the
     long side at most `max_long_side` (mmcv's rule: scale = min(long_max / long, short / short));
  2. either one pass over the whole resized image, or windows of `crop` x `crop` every `stride`
     pixels, the last window of a row/column flush with the border; each window's patch logits
     are bilinearly upsampled to the window and overlapping windows are averaged;
  3. the averaged logits are upsampled to the original image size (segmenter.finish).
A window whose sides are not multiples of the patch size is zero-padded around its centre
(after normalisation) and the padding cut from its logits (ClearCLIP's handling; SCLIP and
NACLIP drop the remainder pixels instead, a difference of under one patch at the border).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

LogitsFn = Callable[[torch.Tensor], torch.Tensor]  # images [1, 3, H, W] -> patch logits [1, Q, H/p, W/p]


def rescaled_size(h: int, w: int, short_side: int, max_long_side: int) -> tuple[int, int]:
    """The (height, width) after an aspect-preserving resize to `short_side` (long side capped)."""
    scale = min(max_long_side / max(h, w), short_side / min(h, w))
    return int(h * scale + 0.5), int(w * scale + 0.5)


def resize_short_side(images: torch.Tensor, short_side: int, max_long_side: int = 2048) -> torch.Tensor:
    """images [B, 3, H, W] float -> [B, 3, H', W'] (bilinear, align_corners=False)."""
    size = rescaled_size(images.shape[-2], images.shape[-1], short_side, max_long_side)
    if size == tuple(images.shape[-2:]):
        return images
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False)


def window_spans(size: int, crop: int, stride: int) -> list[tuple[int, int]]:
    """[start, end) of every window along one axis; one window when crop >= size."""
    count = max(size - crop + stride - 1, 0) // stride + 1
    spans = []
    for i in range(count):
        end = min(i * stride + crop, size)
        spans.append((max(end - crop, 0), end))
    return spans


def pad_to_patch(images: torch.Tensor, patch: int) -> tuple[torch.Tensor, int, int]:
    """Zero-pad [B, 3, H, W] around the centre to multiples of `patch`; returns (padded, top, left)."""
    h, w = images.shape[-2:]
    dh, dw = -h % patch, -w % patch
    top, left = dh // 2, dw // 2
    if dh or dw:
        images = F.pad(images, (left, dw - left, top, dh - top))
    return images, top, left


def window_logits(logits_fn: LogitsFn, window: torch.Tensor, patch: int) -> torch.Tensor:
    """Logits of one window [1, 3, h, w] at its own pixel resolution: [Q, h, w]."""
    h, w = window.shape[-2:]
    padded, top, left = pad_to_patch(window, patch)
    grid = logits_fn(padded)  # [1, Q, h'/p, w'/p]
    up = F.interpolate(grid.float(), size=padded.shape[-2:], mode="bilinear", align_corners=False)
    return up[0, :, top : top + h, left : left + w]  # [Q, h, w]


def sliding_logits(logits_fn: LogitsFn, image: torch.Tensor, patch: int, crop: int | None = None,
                   stride: int | None = None) -> torch.Tensor:
    """Logits [Q, H, W] of a resized image [1, 3, H, W]: one pass (crop=None) or averaged windows."""
    if crop is None:
        return window_logits(logits_fn, image, patch)
    if not stride or stride < 1 or crop < 1:
        raise ValueError(f"sliding window needs positive crop and stride, got crop={crop}, stride={stride}")
    h, w = image.shape[-2:]
    total, count = None, torch.zeros(h, w, device=image.device)
    for y0, y1 in window_spans(h, crop, stride):
        for x0, x1 in window_spans(w, crop, stride):
            logits = window_logits(logits_fn, image[:, :, y0:y1, x0:x1], patch)  # [Q, y1-y0, x1-x0]
            if total is None:
                total = torch.zeros((logits.shape[0], h, w), device=logits.device, dtype=logits.dtype)
            total[:, y0:y1, x0:x1] += logits
            count[y0:y1, x0:x1] += 1
    return total / count  # every pixel is covered by at least one window
