"""Metrics accumulated over a whole dataset (torchmetrics states, summed across DDP ranks)."""

from car.metrics.referring import WEIGHTINGS, ReferringIoU, referring_scores
from car.metrics.semantic import AVERAGE_RULES, BG_PROTOCOLS, ConfusionMatrix, protocol_name, segmentation_scores

__all__ = ["AVERAGE_RULES", "BG_PROTOCOLS", "ConfusionMatrix", "protocol_name", "segmentation_scores",
           "WEIGHTINGS", "ReferringIoU", "referring_scores"]
