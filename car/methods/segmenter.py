"""What a segmenter offers the predictor, the evaluation and the Python API, whatever the method.

Every method's factory (car/methods/registry.py) returns a `Segmenter`: called on a sample it gives
the prediction. An image segmenter is also a `SplitSegmenter`: `propose` is the model part (CLIPs,
SAM: on the accelerator) and `finish` the CPU part (CRF, PAMR, painting), so that `crf_workers` can
run `cpu_part()` copies of it in worker processes while the next images go through the models.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from car.methods.pixel_budget import PixelBudget


@runtime_checkable
class Segmenter(Protocol):
    budget: PixelBudget | None  # CaR's car.max_pixels; None: the method sizes its own input
    sam_masks: Any  # SAM's automatic mask generator (postprocess=sam), else None

    @property
    def models(self) -> list[torch.nn.Module]:
        """The models it runs besides the backbone CLIPs (SAM, GroupViT's own), moved with them."""

    def __call__(self, sample: dict) -> tuple[np.ndarray, dict]:
        """One sample -> (prediction at the image's size: [H, W] int64, or [T, H, W] for a video; info:
        steps, kept ...)."""


@runtime_checkable
class SplitSegmenter(Segmenter, Protocol):
    """An image segmenter whose model part and CPU part run apart (crf_workers > 0)."""

    def propose(self, sample: dict) -> tuple[Any, dict]:
        """The model part: (proposals for `finish`, per-image info)."""

    def finish(self, image: np.ndarray, proposals: Any) -> np.ndarray:
        """The CPU part: image [H, W, 3] uint8 and `propose`'s proposals -> prediction [H, W] int64."""

    def cpu_part(self) -> SplitSegmenter:
        """A copy without the models, cheap to send to a worker process, whose `finish` gives the same result."""
