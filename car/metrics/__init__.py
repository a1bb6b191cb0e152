"""Metrics accumulated over a whole dataset (torchmetrics states, summed across DDP ranks)."""

from car.metrics.referring import ReferringIoU, referring_scores
from car.metrics.semantic import AVERAGE_RULES, BG_PROTOCOLS, ConfusionMatrix, segmentation_scores

__all__ = ["AVERAGE_RULES", "BG_PROTOCOLS", "ConfusionMatrix", "segmentation_scores", "ReferringIoU", "referring_scores"]
