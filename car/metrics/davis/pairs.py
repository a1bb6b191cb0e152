"""J and F of every (predicted object, ground-truth object) pair of a sequence, frame by frame, fast.

The numbers are those of ``measures.region_similarity`` / ``measures.boundary_measure`` on each
pair of binary masks (tests hold them equal); the work is shared instead of repeated per pair:

* J: one joint histogram of (ground-truth id, predicted id) per frame gives every intersection;
  the unions follow from the object areas. Void pixels are zeroed in both label maps first, which
  is the same as excluding them.
* F: each object's boundary and its dilation are computed once per frame, not once per pair, and
  only inside the object's bounding box (one pixel more above and left, where ``seg2bmap`` can
  mark background pixels; the dilation ``r`` more on every side), so a small object costs little
  on a large frame. A crop whose last row / column is not the image's is a background row /
  column, where the toolkit's last-row / last-column rule gives the same answer as the full image.
"""

from __future__ import annotations

import cv2
import numpy as np

from car.metrics.davis.measures import BOUNDARY_FRACTION, boundary_tolerance, disk, f_from_counts, seg2bmap


class _Boundary:
    """One object's boundary in one frame: its pixels, and (on first use) its dilated crop."""

    __slots__ = ("_crop", "_dilated", "_kernel", "bottom", "left", "right", "top", "xy")

    def __init__(self, labels: np.ndarray, label: int, box: tuple[int, int, int, int], kernel: np.ndarray) -> None:
        x, y, w, h = box  # the object's bounding box in the label map
        height, width = labels.shape
        top, left = max(y - 1, 0), max(x - 1, 0)
        bottom, right = min(y + h + 1, height), min(x + w + 1, width)
        boundary = seg2bmap(labels[top:bottom, left:right] == label).view(np.uint8)  # [h', w'] in the crop
        found = cv2.findNonZero(boundary)  # (x, y) of each, [N, 1, 2] or [N, 2]; None if none
        self.xy = np.zeros((0, 2), np.int32) if found is None else found.reshape(-1, 2) + (left, top)  # [N, 2]
        r = kernel.shape[0] // 2
        self.top, self.left, self.bottom, self.right = top - r, left - r, bottom + r, right + r  # dilation's box
        self._crop, self._kernel, self._dilated = boundary, kernel, None

    @property
    def size(self) -> int:
        return len(self.xy)

    def dilated(self) -> np.ndarray:
        """[h' + 2r, w' + 2r] uint8 dilation of the boundary, origin (top, left)."""
        if self._dilated is None:
            r = self._kernel.shape[0] // 2
            padded = cv2.copyMakeBorder(self._crop, r, r, r, r, cv2.BORDER_CONSTANT, value=0)
            self._dilated = cv2.dilate(padded, self._kernel)
        return self._dilated

    def count_within(self, other: _Boundary) -> int:
        """How many of `other`'s boundary pixels lie in this boundary's dilation."""
        if (other.top >= self.bottom or other.bottom <= self.top or other.left >= self.right
                or other.right <= self.left):
            return 0  # the boxes (each grown by r) do not meet: no pixel is within r
        xs, ys = other.xy[:, 0] - self.left, other.xy[:, 1] - self.top
        dilated = self.dilated()
        inside = (ys >= 0) & (ys < dilated.shape[0]) & (xs >= 0) & (xs < dilated.shape[1])
        return int(np.count_nonzero(dilated[ys[inside], xs[inside]]))


def _boxes(labels: np.ndarray, count: int) -> list[tuple[int, int, int, int] | None]:
    """(x, y, w, h) bounding box of each id 1..count of a [H, W] label map, None where absent."""
    x0, y0, w0, h0 = cv2.boundingRect(labels)  # all objects together: search only there
    if count == 0 or w0 == 0:
        return [None] * count
    region = labels[y0:y0 + h0, x0:x0 + w0]
    boxes = []
    for label in range(1, count + 1):
        x, y, w, h = cv2.boundingRect((region == label).view(np.uint8))
        boxes.append((x + x0, y + y0, w, h) if w else None)
    return boxes


def _boundaries(labels: np.ndarray, count: int, kernel: np.ndarray) -> list[_Boundary | None]:
    """Boundary of each object 1..count of a [H, W] label map (None where the object is absent)."""
    return [None if box is None else _Boundary(labels, k, box, kernel)
            for k, box in enumerate(_boxes(labels, count), start=1)]


def _frame_f(gt_bounds: list, pred_bounds: list) -> np.ndarray:
    """[P, G] F of one frame."""
    f = np.empty((len(pred_bounds), len(gt_bounds)))
    for j, pred in enumerate(pred_bounds):
        for i, gt in enumerate(gt_bounds):
            n_pred, n_gt = (pred.size if pred else 0), (gt.size if gt else 0)
            pred_matched = gt.count_within(pred) if n_pred and n_gt else 0
            gt_matched = pred.count_within(gt) if n_pred and n_gt else 0
            f[j, i] = f_from_counts(pred_matched, n_pred, gt_matched, n_gt)
    return f


def _frame_j(gt: np.ndarray, pred: np.ndarray, n_gt: int, n_pred: int) -> np.ndarray:
    """[P, G] J of one frame from a joint histogram (void already zeroed in both)."""
    x, y, w, h = cv2.boundingRect(cv2.bitwise_or(gt, pred))  # outside it both are background
    gt, pred = gt[y:y + h, x:x + w], pred[y:y + h, x:x + w]
    bins = (n_gt + 1) * (n_pred + 1)
    if bins <= 256:  # one uint8 code per pixel, counted by OpenCV (exact: counts < 2**24)
        codes = gt * np.uint8(n_pred + 1) + pred
        counts = cv2.calcHist([codes], [0], None, [256], [0, 256]).reshape(-1)[:bins].astype(np.int64)
    else:
        counts = np.bincount((gt.astype(np.intp) * (n_pred + 1) + pred).ravel(), minlength=bins)
    joint = counts.reshape(n_gt + 1, n_pred + 1)  # [G+1, P+1]
    inter = joint[1:, 1:].T  # [P, G]
    gt_area, pred_area = joint[1:, :].sum(axis=1), joint[:, 1:].sum(axis=0)  # [G], [P]
    union = gt_area[None, :] + pred_area[:, None] - inter
    return np.where(union == 0, 1.0, inter / np.maximum(union, 1))


def pairwise_scores(gt: np.ndarray, pred: np.ndarray, n_gt: int, n_pred: int, void: np.ndarray | None = None,
                    fraction: float = BOUNDARY_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """J and F, each [P, G, T] float64, of predicted objects 1..P against ground-truth objects 1..G.

    gt: [T, H, W] ground-truth ids (ids above G, void 255 among them, count as background);
    pred: [T, H, W] predicted ids in 0..P; void: [T, H, W] bool or None. Missing objects are empty masks."""
    frames, height, width = gt.shape
    kernel = disk(boundary_tolerance(height, width, fraction))
    j = np.empty((n_pred, n_gt, frames))
    f = np.empty((n_pred, n_gt, frames))
    for t in range(frames):
        g = np.ascontiguousarray(gt[t], dtype=np.uint8)  # [H, W]
        p = np.ascontiguousarray(pred[t], dtype=np.uint8)
        if g.max() > n_gt or (void is not None and void[t].any()):
            g, p = g.copy(), p.copy()
            g[g > n_gt] = 0
            if void is not None:
                g[void[t]] = 0
                p[void[t]] = 0
        j[:, :, t] = _frame_j(g, p, n_gt, n_pred)
        f[:, :, t] = _frame_f(_boundaries(g, n_gt, kernel), _boundaries(p, n_pred, kernel))
    return j, f
