"""Collecting per-rank results after a DDP predict (Lightning's `trainer=ddp`).

Lightning's predict loop shards the dataset with `UnrepeatedDistributedSampler`: rank r gets
indices r, r + W, r + 2W, ... with no padding, so every image is predicted exactly once. The
dataset metric is a torchmetrics state summed across ranks on `compute()`; the per-image records
(image ids, steps, overlays) are plain Python lists, gathered here and re-interleaved into
dataset order, so a W-process run writes the same metrics.json as a single-process one.
"""

from __future__ import annotations

import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_interleaved(items: list) -> list:
    """Every rank's list -> one list in dataset order (rank r's i-th item is index i*W + r)."""
    if not is_distributed():
        return list(items)
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, list(items))
    longest = max(len(p) for p in parts)
    return [p[i] for i in range(longest) for p in parts if i < len(p)]


def gather_sum(value: float) -> float:
    if not is_distributed():
        return value
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, value)
    return sum(parts)


def gather_predictions(predictor) -> tuple[list[dict], list[dict], float]:
    """(per_image records, first overlay examples, CaR seconds summed) over all ranks."""
    per_image = gather_interleaved(predictor.per_image)
    examples = gather_interleaved(predictor.examples)[: predictor.keep_examples]
    return per_image, examples, gather_sum(predictor.seconds)
