"""Metrics accumulated over a whole dataset (torchmetrics states, summed across DDP ranks).

The contract (car/metrics/schema.py): every metric has `task` (a key of schema.TASKS) and
`label_names` (the names of its prediction values), takes `update(pred, target, ...)` per sample and
returns its scores from `compute()`, the task's typed scores that metrics.json records.
"""

from car.metrics.referring import WEIGHTINGS, ReferringIoU, referring_scores
from car.metrics.semantic import AVERAGE_RULES, BG_PROTOCOLS, SemanticIoU, protocol_name, segmentation_scores

__all__ = ["AVERAGE_RULES", "BG_PROTOCOLS", "SemanticIoU", "protocol_name", "segmentation_scores",
           "WEIGHTINGS", "ReferringIoU", "referring_scores"]
