"""CaR + SAM: replace a final CaR mask by the union of the SAM masks that match it (CAR_SPEC §7.5).

For one non-empty CaR mask m [H, W] and SAM's automatic masks A [N, H, W]:

1. inter_a = |m ∩ a|. Coverage of a by m, inter_a / |a|, counts only when m's side of the overlap,
   inter_a / |m|, is at least `min_pred_threshold`; iom_a = max(that coverage, inter_a / |m|)
   (an intersection-over-minimum that ignores tiny SAM masks which merely touch m).
2. Keep the SAM masks with iom_a > `iom_thres`; if none, keep the single best one.
3. u = union of the kept masks. The evaluation path replaces m by u only when
   IoU(u, m) > `matching_thresh` (the official default 0.9); otherwise m stays.

Labels are then painted as in §7.3 (ascending score), which `paint_label_map` does after this.
Pure numpy: it runs in the CPU worker processes with the dense CRF.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def match_sam_masks(mask: np.ndarray, sam_masks: np.ndarray, iom_thres: float, min_pred_threshold: float,
                    sam_areas: np.ndarray | None = None) -> np.ndarray:
    """The union u [H, W] bool of the SAM masks kept for `mask` (steps 1-2). `sam_areas` [N]: the
    SAM masks' pixel counts, when the caller matches many masks against the same SAM masks."""
    m = np.asarray(mask, dtype=bool)
    a = np.asarray(sam_masks, dtype=bool)  # [N, H, W]; no copy when already bool
    inter = np.logical_and(a, m).sum(axis=(1, 2)).astype(np.float64)  # [N]
    area_a = np.maximum(a.sum(axis=(1, 2)) if sam_areas is None else sam_areas, 1).astype(np.float64)
    area_m = max(float(m.sum()), 1.0)
    of_mask = inter / area_m  # [N] share of m covered by a
    of_sam = np.where(of_mask < min_pred_threshold, 0.0, inter / area_a)  # [N] share of a inside m
    iom = np.maximum(of_sam, of_mask)
    keep = iom > iom_thres
    if not keep.any():
        keep = np.zeros_like(keep)
        keep[int(np.argmax(iom))] = True
    return a[keep].any(axis=0)


def mask_iou(x: np.ndarray, y: np.ndarray) -> float:
    union = np.logical_or(x, y).sum()
    return float(np.logical_and(x, y).sum() / union) if union else 0.0


@dataclass(frozen=True)
class SamMatcher:
    """The matching rule with its thresholds; picklable (sent to the CRF worker processes)."""

    iom_thres: float = 0.6  # VOC 0.6, COCO-Object 0.7, Context 0.5, RefCOCO* 0.5 (dataset configs)
    min_pred_threshold: float = 0.05
    matching_thresh: float = 0.9

    def refine(self, mask: np.ndarray, sam_masks: np.ndarray, sam_areas: np.ndarray | None = None) -> np.ndarray:
        """One CaR mask [H, W] -> the refined mask [H, W] bool (unchanged when nothing matches)."""
        mask = np.asarray(mask, dtype=bool)
        if not mask.any() or len(sam_masks) == 0:
            return mask
        union = match_sam_masks(mask, sam_masks, self.iom_thres, self.min_pred_threshold, sam_areas)
        return union if mask_iou(union, mask) > self.matching_thresh else mask

    def __call__(self, masks: np.ndarray, sam_masks: np.ndarray | None) -> np.ndarray:
        """Every final mask of an image: [K, H, W] -> [K, H, W] bool (they may overlap afterwards;
        painting in ascending score order resolves that)."""
        if sam_masks is None or len(masks) == 0:
            return np.asarray(masks, dtype=bool)
        sam_masks = np.asarray(sam_masks, dtype=bool)
        areas = sam_masks.sum(axis=(1, 2))  # [N], once for all K masks of the image
        return np.stack([self.refine(m, sam_masks, areas) for m in masks])
