"""The predict-only LightningModule: runs CaR on each image and accumulates the confusion matrix.

Lightning gives device placement, DDP sharding and progress bars; nothing here trains. The
Trainer must be built with `inference_mode=False` (gradCAM needs autograd). Metrics are read
after `trainer.predict` from `self.metric` (a torchmetrics state, summed across DDP ranks),
not through `self.log`, which predict does not support.
"""

from __future__ import annotations

import time

import numpy as np
import pytorch_lightning as pl
import torch

import torchmetrics


class CarPredictor(pl.LightningModule):
    def __init__(self, segmenter, models: list[torch.nn.Module], metric: torchmetrics.Metric, keep_examples: int = 0):
        super().__init__()
        self.segmenter = segmenter
        self.clips = torch.nn.ModuleList(dict.fromkeys(models))  # registered so Lightning moves them
        self.metric = metric  # ConfusionMatrix (semantic) or ReferringIoU (referring)
        self.keep_examples = keep_examples
        self.examples: list[dict] = []  # first images with their predictions, for overlays
        self.per_image: list[dict] = []
        self.seconds = 0.0

    def predict_step(self, batch: list[dict], batch_idx: int) -> None:
        for sample in batch:
            start = time.perf_counter()
            pred, info = self.segmenter(sample)  # [H, W] int64 label map or binary mask
            self.seconds += time.perf_counter() - start
            target = torch.from_numpy(np.ascontiguousarray(sample["target"])).to(self.device)
            # referring: the unit's prediction counts once per sentence (see car/metrics/referring.py)
            weight = {"weight": float(len(sample["sentences"]))} if "sentences" in sample else {}
            self.metric.update(torch.from_numpy(pred).to(self.device), target, **weight)
            self.per_image.append({"image_id": sample["image_id"], "steps": info["steps"], "kept": info["kept"]})
            if len(self.examples) < self.keep_examples:
                self.examples.append({"image_id": sample["image_id"], "image": sample["image"],
                                      "target": sample["target"], "pred": pred})
