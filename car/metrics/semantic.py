"""Semantic-segmentation metrics: a dataset-wide confusion matrix and the scores derived from it.

The confusion matrix is accumulated over the whole dataset (and summed across DDP ranks);
mIoU is computed once from the final matrix, never averaged over batches.

Two averaging rules and two background protocols are supported because papers differ:

* ``average="gt_present"`` (CaR's rule): mean IoU over classes that occur in the ground truth.
* ``average="union_present"`` (mmseg's rule): mean IoU over classes that occur in the ground truth
  or in the prediction (a class predicted but absent from the ground truth counts as IoU 0).

* ``bg_protocol=None``: every class, background included.
* ``bg_protocol="car"`` (CaR's VOC-20 / Context-59 protocol): row *and* column 0 are dropped, so
  ground-truth background pixels are ignored *and* foreground pixels predicted as background are
  ignored.
* ``bg_protocol="standard"`` (no background query, ground-truth background ignored): row 0 is
  dropped, but foreground pixels predicted as class 0 still count as false negatives of their
  ground-truth class.

``bg_protocol`` takes the config values (``dataset.bg_protocol``). What "standard" means depends
on whether the run's predictions have a background class, so results name it by `protocol_name`:

* ``standard_no_bg``: no background class is predicted (the peer methods; CaR with
  ``dataset.bg_protocol=standard``, which drops its CRF background channel). This is the peers'
  published VOC-20 / Context-59 protocol.
* ``standard_bg_miss``: the predictions have a background class (CaR's CRF background channel
  under ``bg_protocol=car``), and its foreground pixels predicted as background count as misses.
  No paper reports this number; it shows what CaR's background costs under the row-only rule.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torchmetrics

from car.settings.enums import AVERAGE_RULES, BG_PROTOCOLS


def protocol_name(bg_protocol: str | None, predicts_background: bool) -> str:
    """The name a protocol has in metrics.json and `car.reporting.compare`: `with_background`, `car`,
    `standard_no_bg` or `standard_bg_miss` (see the module docstring)."""
    if bg_protocol not in BG_PROTOCOLS:
        raise ValueError(f"bg_protocol must be one of {BG_PROTOCOLS}, got {bg_protocol!r}")
    if bg_protocol != "standard":
        return bg_protocol or "with_background"
    return "standard_bg_miss" if predicts_background else "standard_no_bg"


class SemanticIoU(torchmetrics.Metric):
    """Semantic-segmentation scores of a dataset: a pixel confusion matrix (rows = ground truth,
    cols = prediction) accumulated over it, and `compute()` -> `SemanticScores` (car/metrics/schema.py).

    Ground-truth pixels equal to ``ignore_index`` (255: unlabelled) are not counted; this is the
    only place where they are dropped. Any other ground-truth value outside ``[0, num_classes)``
    is an error, as is any prediction outside it. ``ignore_index=None`` ignores nothing. The
    state is summed across processes, so DDP evaluation gives the same matrix as one process.

    The scores follow the configured rule (`average`, `bg_protocol`); `all_rules` adds the mIoU
    under every (average, protocol) pair that applies, each protocol named by `protocol_name`
    ("standard" is standard_no_bg when the predictions have no background class, the peers, and
    standard_bg_miss for CaR's background channel).
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    task = "semantic"

    confmat: torch.Tensor  # int64 [num_classes, num_classes]

    def __init__(self, num_classes: int, ignore_index: int | None = 255, average: str = "gt_present",
                 bg_protocol: str | None = None, class_names: Sequence[str] | None = None,
                 predicts_background: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        if average not in AVERAGE_RULES:
            raise ValueError(f"average must be one of {AVERAGE_RULES}, got {average!r}")
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.average, self.bg_protocol, self.predicts_background = average, bg_protocol, predicts_background
        self.protocol = protocol_name(bg_protocol, predicts_background)  # checks bg_protocol
        names = range(num_classes) if class_names is None else class_names
        self.label_names = [str(n) for n in names]
        self.add_state(
            "confmat",
            default=torch.zeros(num_classes, num_classes, dtype=torch.int64),
            dist_reduce_fx="sum",
        )

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add one image [H,W] or a batch [B,H,W] of integer class maps to the matrix."""
        if pred.shape != target.shape:
            raise ValueError(
                f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
            )
        if pred.dim() not in (2, 3):
            raise ValueError(f"expected [H,W] or [B,H,W] class maps, got shape {tuple(pred.shape)}")
        if pred.is_floating_point() or target.is_floating_point():
            raise ValueError("pred and target must be integer class maps, not floating point tensors")
        n = self.num_classes
        pred = pred.to(self.confmat.device, torch.int64).reshape(-1)  # [P]
        target = target.to(self.confmat.device, torch.int64).reshape(-1)  # [P]
        if pred.numel() and (pred.min() < 0 or pred.max() >= n):
            bad = torch.unique(pred[(pred < 0) | (pred >= n)])[:10].tolist()
            raise ValueError(f"prediction values must be in [0, {n}), found {bad}")

        if self.ignore_index is not None:
            counted = target != self.ignore_index  # [P] bool
            target, pred = target[counted], pred[counted]  # [V]
        if target.numel() and (target.min() < 0 or target.max() >= n):
            bad = torch.unique(target[(target < 0) | (target >= n)])[:10].tolist()
            raise ValueError(f"target values must be in [0, {n}) or the ignore index {self.ignore_index}, found {bad}")
        flat_index = target * n + pred  # [V] index into the flattened [n, n] matrix
        self.confmat += torch.bincount(flat_index, minlength=n * n).reshape(n, n)

    def compute(self) -> dict:
        """`SemanticScores`: the configured rule's scores, `all_rules` and the matrix itself."""
        confmat = self.confmat.cpu()  # [K, K] int64
        names = self.label_names
        scores = segmentation_scores(confmat, self.average, self.bg_protocol, names)
        scores["bg_protocol"] = self.protocol
        protocols = [None] if self.bg_protocol is None else ["car", "standard"]
        scores["all_rules"] = {
            f"{average}/{protocol_name(protocol, self.predicts_background)}":
                segmentation_scores(confmat, average=average, bg_protocol=protocol, class_names=names)["miou"]
            for average in AVERAGE_RULES for protocol in protocols
        }
        scores["confusion_matrix"] = confmat.tolist()
        return scores


def _percent(numerator: float, denominator: float) -> float:
    """100 * numerator / denominator, or NaN when the denominator is zero."""
    return float(100.0 * numerator / denominator) if denominator > 0 else float("nan")


def segmentation_scores(
    confmat: torch.Tensor | np.ndarray,
    average: str = "gt_present",
    bg_protocol: str | None = None,
    class_names: Sequence[str] | None = None,
) -> dict:
    """Compute mIoU, per-class IoU and accuracies (all in percent, 0..100) from a confusion matrix.

    Args:
        confmat: [K, K] counts, rows = ground truth, cols = prediction.
        average: "gt_present" (CaR) or "union_present" (mmseg); see the module docstring.
        bg_protocol: None, "car" or "standard"; see the module docstring. With a background
            protocol, class 0 is not reported in ``per_class_iou``.
        class_names: K names used as ``per_class_iou`` keys (default: "0".."K-1").

    Returns:
        {"miou", "per_class_iou" {name: IoU or None if not averaged}, "pixel_accuracy",
         "mean_accuracy" (mean recall over classes present in the ground truth), "average",
         "bg_protocol", "num_classes_averaged"}. Scores with nothing to average are NaN.
    """
    if average not in AVERAGE_RULES:
        raise ValueError(f"average must be one of {AVERAGE_RULES}, got {average!r}")
    if bg_protocol not in BG_PROTOCOLS:
        raise ValueError(f"bg_protocol must be one of {BG_PROTOCOLS}, got {bg_protocol!r}")
    matrix = torch.as_tensor(confmat).detach().cpu().to(torch.float64)  # [K, K]
    if matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"confmat must be a square [K, K] matrix, got shape {tuple(matrix.shape)}")
    num_classes = matrix.shape[0]
    names = [str(i) for i in range(num_classes)] if class_names is None else [str(n) for n in class_names]
    if len(names) != num_classes:
        raise ValueError(f"got {len(names)} class names for a {num_classes}-class confusion matrix")
    if len(set(names)) != len(names):
        raise ValueError("class_names must be unique")

    if bg_protocol is None:
        first = 0
        rows = matrix  # [C, C]: every ground-truth class, every prediction
        pred_cols = matrix  # [C, C]: columns of the reported classes
    elif bg_protocol == "car":
        first = 1
        rows = matrix[1:, 1:]  # [C, C]: drop GT background and predicted background
        pred_cols = rows
    else:  # "standard"
        first = 1
        rows = matrix[1:, :]  # [C, K]: drop GT background; predicted background stays a miss
        pred_cols = matrix[1:, 1:]  # [C, C]: false positives only from foreground GT pixels

    true_pos = torch.diagonal(pred_cols)  # [C]
    gt_total = rows.sum(dim=1)  # [C] = TP + FN
    pred_total = pred_cols.sum(dim=0)  # [C] = TP + FP
    union = gt_total + pred_total - true_pos  # [C] = TP + FP + FN

    if average == "gt_present":
        averaged = gt_total > 0  # [C] bool
    else:
        averaged = union > 0  # [C] bool
    iou = 100.0 * true_pos / union.clamp(min=1)  # [C]; only read where `averaged`
    recall = 100.0 * true_pos / gt_total.clamp(min=1)  # [C]; only read where gt_total > 0

    per_class_iou = {
        names[first + c]: (float(iou[c]) if averaged[c] else None) for c in range(true_pos.numel())
    }
    num_averaged = int(averaged.sum())
    num_gt_present = int((gt_total > 0).sum())
    return {
        "miou": float(iou[averaged].mean()) if num_averaged else float("nan"),
        "per_class_iou": per_class_iou,
        "pixel_accuracy": _percent(float(true_pos.sum()), float(rows.sum())),
        "mean_accuracy": float(recall[gt_total > 0].mean()) if num_gt_present else float("nan"),
        "average": average,
        "bg_protocol": bg_protocol,
        "num_classes_averaged": num_averaged,
    }
