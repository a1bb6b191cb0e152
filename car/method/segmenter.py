"""CaR as a semantic segmenter: queries = class names, output = a label map (CAR_SPEC §7.3, §7.4)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from car.method.postprocess import DenseCRF, paint_label_map, semantic_masks
from car.method.recurrence import CaR


@dataclass
class QueryPass:
    """One CaR run over a set of classes (Pascal Context has a things pass and a stuff pass)."""

    queries: list[str]  # class-name strings as CaR sees them
    label_ids: list[int]  # label id of each query in the dataset's label map
    background_words: list[str] | None = None  # None = the method's background words
    prompt_types: list[str] | None = None  # None = the method's visual prompts


class SemanticCaR:
    """Runs CaR pass(es) on an image and paints the label map.

    Later passes paint on top of earlier ones (Context: stuff first, then things).
    """

    def __init__(self, car: CaR, passes: list[QueryPass], crf: DenseCRF | None, bg_factor: float = 1.0,
                 background: bool = True):
        self.car = car
        self.passes = passes
        self.crf = crf
        self.bg_factor = bg_factor
        self.background = background

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, dict]:
        """image [H, W, 3] uint8 -> (label map [H, W] int64, info for logging)."""
        label_map = np.zeros(image.shape[:2], dtype=np.int64)
        info = {"steps": [], "kept": []}
        for qp in self.passes:
            result = self.car(image, qp.queries, background_words=qp.background_words, prompt_types=qp.prompt_types)
            masks = semantic_masks(image, result.maps, self.crf, self.bg_factor, self.background)  # [K, H, W]
            ids = [qp.label_ids[i] for i in result.live]
            label_map = paint_label_map(masks, result.scores, ids, image.shape[:2], base=label_map)
            info["steps"].append(result.steps)
            info["kept"].append(ids)
        return label_map, info
