"""Referring-segmentation metrics (CAR_SPEC §8): mIoU, oIoU and precision@X over evaluation units.

Each evaluation unit (a referred object with all its sentences, or one sentence) has one
predicted binary mask. Its IoU counts with a weight w set by the weighting rule:

* ``weighting="unit"`` (default; the official CaR evaluation): w = 1, every unit counts once,
  so with ``unit=object`` every referred object counts once whatever its number of sentences;
* ``weighting="sentence"``: w = the unit's number of sentences, so every sentence counts once.

With ``unit=sentence`` every unit has one sentence and the two rules give the same numbers.

    mIoU = Σ w·IoU / Σ w            (IoU = 0 when the union is empty)
    oIoU = Σ w·|P∩G| / Σ w·|P∪G|    ("cumulative" / overall IoU)
    P@t  = Σ w·[IoU ≥ t] / Σ w      for t in 0.5 … 0.9

`ReferringIoU.compute()` returns these as `ReferringScores` (car/metrics/schema.py), with the unit,
the weighting in words and every unit's IoU.
"""

from __future__ import annotations

import torch
import torchmetrics

from car.settings.enums import WEIGHTINGS

PRECISION_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
UNITS = ("object", "sentence")


class ReferringIoU(torchmetrics.Metric):
    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    task = "referring"
    label_names = ["background", "referred object"]  # the values of a predicted mask

    def __init__(self, weighting: str = "unit", unit: str = "object", **kwargs) -> None:
        super().__init__(**kwargs)
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        if unit not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
        self.weighting = weighting
        self.unit = unit
        zero = torch.tensor(0.0, dtype=torch.float64)
        for name in ("iou_sum", "weight_sum", "inter_sum", "union_sum"):
            self.add_state(name, default=zero.clone(), dist_reduce_fx="sum")
        self.add_state("hits", default=torch.zeros(len(PRECISION_THRESHOLDS), dtype=torch.float64),
                       dist_reduce_fx="sum")
        self.add_state("units", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("sentences", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("unit_ious", default=[], dist_reduce_fx="cat")  # [1] float64 per unit, in update order

    def update(self, pred: torch.Tensor, target: torch.Tensor, sentences: int = 1) -> None:
        """pred, target: [H, W] binary masks of one unit (target values other than 0/1 are ignored);
        `sentences`: how many sentences the unit has."""
        if pred.shape != target.shape:
            raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
        weight = float(sentences) if self.weighting == "sentence" else 1.0
        inter, union = intersection_union(pred, target)
        iou = inter / union if union > 0 else torch.zeros((), dtype=torch.float64, device=union.device)
        self.iou_sum += weight * iou
        self.weight_sum += weight
        self.inter_sum += weight * inter
        self.union_sum += weight * union
        self.hits += weight * (iou >= torch.tensor(PRECISION_THRESHOLDS, dtype=torch.float64, device=iou.device))
        self.units += 1
        self.sentences += int(sentences)
        self.unit_ious.append(iou.reshape(1))

    def compute(self) -> dict:
        scores = referring_scores(self.iou_sum, self.weight_sum, self.inter_sum, self.union_sum, self.hits,
                                  self.units, self.sentences)
        ious = self.unit_ious if isinstance(self.unit_ious, torch.Tensor) else torch.cat(self.unit_ious or [
            torch.zeros(0, dtype=torch.float64)])  # [N] (synced states arrive concatenated)
        return {**scores, "weighting": self.weighting, "unit": self.unit, "unit_note": self.unit_note(),
                "unit_ious": [100.0 * float(iou) for iou in ious]}

    def unit_note(self) -> str:
        """What one evaluation unit is and how it counts, in words (metrics.json, the report)."""
        run = ("object: one CaR run per referred object over all its sentences (official CaR)" if self.unit == "object"
               else "sentence: one CaR run per sentence (standard RIS protocol)")
        if self.unit == "sentence":
            counted = "every sentence counts once"
        elif self.weighting == "unit":
            counted = "every object counts once in mIoU, oIoU and precision@X (official CaR evaluation)"
        else:
            counted = "its mask counts once per sentence of the object (weighting=sentence)"
        return f"{run}; {counted}"


def intersection_union(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """|P∩G| and |P∪G| (float64) of one unit; target pixels other than 0/1 are ignored."""
    valid = (target == 0) | (target == 1)
    p, g = pred.bool() & valid, (target == 1)
    return (p & g).sum().double(), (p | g).sum().double()


def referring_scores(iou_sum, weight_sum, inter_sum, union_sum, hits, units, sentences) -> dict:
    """Percent scores from the summed states."""
    w = float(weight_sum)
    out = {
        "miou": 100.0 * float(iou_sum) / w if w else 0.0,
        "oiou": 100.0 * float(inter_sum) / float(union_sum) if float(union_sum) else 0.0,
        "num_units": int(units),
        "num_sentences": int(sentences),
    }
    for t, h in zip(PRECISION_THRESHOLDS, hits.tolist()):
        out[f"precision@{t}"] = 100.0 * h / w if w else 0.0
    return out
