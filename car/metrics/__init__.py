"""Metrics accumulated over a whole dataset (torchmetrics states, summed across DDP ranks), and the
DAVIS video measures (car.metrics.davis, numpy + OpenCV).

The contract (car/metrics/schema.py): every metric has `task` (a key of schema.TASKS) and
`label_names` (the names of its prediction values), takes `update(pred, target, ...)` per sample and
returns its scores from `compute()`, the task's typed scores that metrics.json records.

The names below are imported on first use (PEP 562), so that ``python -m car.metrics.davis`` /
``car-davis`` starts without importing torch and torchmetrics.
"""

from importlib import import_module

_EXPORTS = {
    "WEIGHTINGS": "car.metrics.referring", "ReferringIoU": "car.metrics.referring",
    "referring_scores": "car.metrics.referring",
    "AVERAGE_RULES": "car.metrics.semantic", "BG_PROTOCOLS": "car.metrics.semantic",
    "SemanticIoU": "car.metrics.semantic", "protocol_name": "car.metrics.semantic",
    "segmentation_scores": "car.metrics.semantic",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'car.metrics' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
