"""The DAVIS measures of one frame and one object, as the official DAVIS-2017 toolkit defines them.

Written from the definitions (davisvideochallenge/davis2017-evaluation, ``metrics.py`` and
``utils.py``; the golden README at ../shared/golden/davis spells them out):

* J, region similarity: |P ∧ G ∧ ¬void| / |(P ∨ G) ∧ ¬void|, and 1 when that union is empty.
* F, boundary measure: both masks multiplied by ¬void, their boundaries drawn by ``seg2bmap``
  (a pixel is on the boundary where it differs from its east, south or south-east neighbour; the
  last row and column compare with their one neighbour inside; the corner pixel is never on it),
  each boundary dilated by a disk of radius ``ceil(0.008 × image diagonal)`` pixels (8 at 854×480),
  precision = predicted boundary pixels within the ground truth's dilated boundary / predicted
  boundary pixels, recall the other way round, F = 2PR / (P + R) (0 when P + R = 0); both
  boundaries empty gives 1, exactly one empty gives 0.
* Per object over its frames: M = mean, R = fraction of frames above 0.5, D = mean of the first
  of four bins minus mean of the last (bin ends ``round(linspace(1, N, 5))``, 1-based, neighbouring
  bins share their end frame).

These functions work on one pair of masks, the plain way; ``pairs.py`` computes the same numbers
for every (predicted, ground-truth) object pair of a sequence at once, and the tests hold the two
to each other.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

BOUNDARY_FRACTION = 0.008  # tolerance as a fraction of the image diagonal (the toolkit's bound_th)
RECALL_THRESHOLD = 0.5  # R counts the frames whose value is above this
DECAY_BINS = 4


def boundary_tolerance(height: int, width: int, fraction: float = BOUNDARY_FRACTION) -> int:
    """The dilation radius in pixels: ceil(fraction × diagonal), or `fraction` itself when >= 1."""
    return int(fraction) if fraction >= 1 else math.ceil(fraction * math.hypot(height, width))


def disk(radius: int) -> np.ndarray:
    """[2r+1, 2r+1] uint8 disk: the offsets (dy, dx) with dy² + dx² <= r²."""
    offsets = np.arange(-radius, radius + 1)
    return (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius ** 2).astype(np.uint8)


def seg2bmap(mask: np.ndarray) -> np.ndarray:
    """[H, W] bool boundary of a [H, W] mask (nonzero = inside), the toolkit's rule."""
    seg = np.asarray(mask).astype(bool)
    east, south, south_east = np.zeros_like(seg), np.zeros_like(seg), np.zeros_like(seg)
    east[:, :-1] = seg[:, 1:]
    south[:-1, :] = seg[1:, :]
    south_east[:-1, :-1] = seg[1:, 1:]
    boundary = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    boundary[-1, :] = seg[-1, :] ^ east[-1, :]
    boundary[:, -1] = seg[:, -1] ^ south[:, -1]
    boundary[-1, -1] = False
    return boundary


def _not_void(shape: tuple, void: np.ndarray | None) -> np.ndarray:
    if void is None:
        return np.ones(shape, dtype=bool)
    void = np.asarray(void).astype(bool)
    if void.shape != shape:
        raise ValueError(f"the void mask {void.shape} and the masks {shape} differ in shape")
    return ~void


def region_similarity(gt_mask: np.ndarray, pred_mask: np.ndarray, void: np.ndarray | None = None):
    """J of one frame ([H, W] masks -> float) or of each frame ([T, H, W] -> [T] float64)."""
    gt, pred = np.asarray(gt_mask).astype(bool), np.asarray(pred_mask).astype(bool)
    if gt.shape != pred.shape:
        raise ValueError(f"the ground truth {gt.shape} and the prediction {pred.shape} differ in shape")
    valid = _not_void(gt.shape, void)
    inter = np.sum(gt & pred & valid, axis=(-2, -1))
    union = np.sum((gt | pred) & valid, axis=(-2, -1))
    j = np.where(union == 0, 1.0, inter / np.maximum(union, 1))
    return float(j) if j.ndim == 0 else j


def f_from_counts(pred_matched: int, pred_boundary: int, gt_matched: int, gt_boundary: int) -> float:
    """F from the boundary pixel counts, with the toolkit's empty cases."""
    if pred_boundary == 0 and gt_boundary == 0:
        precision, recall = 1.0, 1.0
    elif pred_boundary == 0:
        precision, recall = 1.0, 0.0
    elif gt_boundary == 0:
        precision, recall = 0.0, 1.0
    else:
        precision, recall = pred_matched / float(pred_boundary), gt_matched / float(gt_boundary)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _boundary_f(gt: np.ndarray, pred: np.ndarray, valid: np.ndarray, fraction: float) -> float:
    kernel = disk(boundary_tolerance(*gt.shape, fraction))
    pred_boundary, gt_boundary = seg2bmap(pred & valid), seg2bmap(gt & valid)
    pred_dilated = cv2.dilate(pred_boundary.astype(np.uint8), kernel).astype(bool)
    gt_dilated = cv2.dilate(gt_boundary.astype(np.uint8), kernel).astype(bool)
    return f_from_counts(int(np.sum(pred_boundary & gt_dilated)), int(pred_boundary.sum()),
                         int(np.sum(gt_boundary & pred_dilated)), int(gt_boundary.sum()))


def boundary_measure(gt_mask: np.ndarray, pred_mask: np.ndarray, void: np.ndarray | None = None,
                     fraction: float = BOUNDARY_FRACTION):
    """F of one frame ([H, W] masks -> float) or of each frame ([T, H, W] -> [T] float64)."""
    gt, pred = np.asarray(gt_mask).astype(bool), np.asarray(pred_mask).astype(bool)
    if gt.shape != pred.shape:
        raise ValueError(f"the ground truth {gt.shape} and the prediction {pred.shape} differ in shape")
    valid = _not_void(gt.shape, void)
    if gt.ndim == 2:
        return _boundary_f(gt, pred, valid, fraction)
    return np.array([_boundary_f(g, p, v, fraction) for g, p, v in zip(gt, pred, valid)], dtype=np.float64)


def object_statistics(per_frame: np.ndarray) -> tuple[float, float, float]:
    """(M, R, D) of one object's per-frame values, the toolkit's ``db_statistics``.

    The bin ends pass through uint8 as in the toolkit, so they wrap for objects of more than 256
    frames (no DAVIS video has that many); kept so the numbers stay the toolkit's."""
    values = np.asarray(per_frame, dtype=np.float64)
    mean = float(np.nanmean(values))
    recall = float(np.nanmean(values > RECALL_THRESHOLD))
    ends = (np.round(np.linspace(1, len(values), DECAY_BINS + 1) + 1e-10) - 1).astype(np.uint8)
    bins = [values[ends[i]:ends[i + 1] + 1] for i in range(DECAY_BINS)]
    decay = float(np.nanmean(bins[0]) - np.nanmean(bins[-1]))
    return mean, recall, decay
