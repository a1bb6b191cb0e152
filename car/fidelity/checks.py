"""One measured comparison with the official outputs, and the measures used.

Measures (`Check.kind`):
* "abs": max |ours - official|;
* "rel": max |ours - official| / max |official| (the array's own scale);
* "agree": % of positions where ours equals official (pixels: all channels equal);
* "equal": decisions (strings, index sets, step counts): identical or not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class Check:
    case: str  # golden file stem, e.g. "c1_032_default"
    run: str  # "main", "refer", "thing", "stuff"
    mode: str  # "TF" (teacher-forced from the official inputs) or "E2E" (our whole CaR)
    stage: str  # e.g. "Grad-CAM"
    step: int | None  # recurrence step (1-based) or None
    kind: str  # abs | rel | agree | equal
    value: float | bool
    limit: float | None  # tolerance: upper bound (abs, rel), lower bound (agree), None (equal)
    detail: str = ""

    @property
    def ok(self) -> bool:
        if self.kind == "equal":
            return bool(self.value)
        if self.kind == "agree":
            return float(self.value) >= self.limit
        return float(self.value) <= self.limit

    def describe(self) -> str:
        where = f"{self.case}/{self.run} {self.mode} {self.stage}" + (f" step {self.step}" if self.step else "")
        return f"{where}: {self.kind} {self.value} (limit {self.limit}) {self.detail}".rstrip()

    def as_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def _arrays(ours, official) -> tuple[np.ndarray, np.ndarray] | None:
    a = np.asarray(ours.detach().cpu() if hasattr(ours, "detach") else ours)
    b = np.asarray(official)
    return (a, b) if a.shape == b.shape else None


def max_abs(ours, official) -> float:
    pair = _arrays(ours, official)
    if pair is None:
        return float("inf")
    a, b = pair
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()) if a.size else 0.0


def max_rel(ours, official) -> float:
    pair = _arrays(ours, official)
    if pair is None:
        return float("inf")
    a, b = (x.astype(np.float64) for x in pair)
    scale = float(np.abs(b).max()) if b.size else 0.0
    return float(np.abs(a - b).max()) / scale if scale else max_abs(a, b)


def agreement(ours, official, channels: bool = False) -> float:
    """% of equal entries; with channels=True the last axis is a pixel's colour."""
    pair = _arrays(ours, official)
    if pair is None:
        return 0.0
    a, b = pair
    same = a == b
    if channels:
        same = same.all(axis=-1)
    return 100.0 * float(same.mean()) if same.size else 100.0


def box_masks(boxes: np.ndarray, num_queries: int, grid: tuple[int, int]) -> np.ndarray:
    """Official boxes [M, 5] = (query, x0, y0, x1, y1), ends exclusive -> union masks [K, h, w]."""
    masks = np.zeros((num_queries, *grid), dtype=bool)
    for q, x0, y0, x1, y1 in np.asarray(boxes, dtype=np.int64).reshape(-1, 5):
        masks[q, y0:y1, x0:x1] = True
    return masks
