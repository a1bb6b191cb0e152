"""CaR as a segmenter of one dataset sample.

* `SemanticCaR`: queries = class names, output = a label map (CAR_SPEC §7.3, §7.4).
* `ReferringCaR`: queries = the expressions of one referred object (or one sentence), output =
  one binary mask by score-weighted vote (CAR_SPEC §8).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from car.methods.car.recurrence import CaR
from car.methods.car.text import clean_referring_expression
from car.methods.pixel_budget import PixelBudget
from car.postprocess.crf import (
    DenseCRF,
    binary_mask,
    paint_label_map,
    semantic_masks,
)


@dataclass
class QueryPass:
    """One CaR run over a set of classes (Pascal Context has a stuff pass and a things pass)."""

    queries: list[str]  # class-name strings as CaR sees them
    label_ids: list[int]  # label id of each query in the dataset's label map
    background_words: list[str] | None = None  # None = the method's background words
    prompt_types: list[str] | None = None  # None = the method's visual prompts


class SemanticCaR:
    """Runs CaR pass(es) on an image and paints the label map.

    Later passes paint on top of earlier ones (Context: stuff first, then things).
    background=False drops the CRF background channel (the peers' no-background protocol).
    oracle_queries=True is a DIAGNOSTIC, not CaR: each image is queried only with the classes
    present in its ground truth (it measures how well the proposals localise given the classes).
    CaR + SAM: `sam_masks(image)` gives SAM's automatic masks (model side, next to CLIP) and
    `sam_match(masks, sam_masks)` swaps matching final masks for them (CPU side, after the CRF).
    `budget` (car.max_pixels): CaR runs on a copy shrunk within it and the label map comes back
    at the image's own size (car/methods/pixel_budget.py).
    """

    def __init__(self, car: CaR, passes: list[QueryPass], crf: DenseCRF | None, bg_factor: float = 1.0,
                 background: bool = True, oracle_queries: bool = False, sam_masks=None, sam_match=None,
                 budget: PixelBudget | None = None):
        self.car = car
        self.budget = budget or PixelBudget()
        self.sam_masks = sam_masks  # SamMaskGenerator | None: image -> [N, H, W] bool
        self.sam_match = sam_match  # SamMatcher | None: ([K, H, W], [N, H, W]) -> [K, H, W]
        self.oracle_queries = oracle_queries
        self.passes = passes
        self.crf = crf
        self.bg_factor = bg_factor
        self.background = background

    @property
    def models(self) -> list:
        """SAM's model (postprocess=sam), moved to the device with the CLIPs."""
        return [self.sam_masks.sam] if self.sam_masks is not None else []

    def __call__(self, sample: dict) -> tuple[np.ndarray, dict]:
        """sample["image"] [H, W, 3] uint8 -> (label map [H, W] int64, info for logging)."""
        proposals, info = self.propose(sample)
        return self.finish(sample["image"], proposals), info

    def propose(self, sample: dict, keep_results: bool = False) -> tuple[dict, dict]:
        """The model part (GPU when there is one): {"passes": per pass (maps [K, H, W], scores [K],
        label ids), "sam": SAM's masks [N, H, W] or None}; H, W within the pixel budget.
        keep_results=True adds info["results"]: each pass's CarResult (final scores, per-step trace;
        not JSON, for callers such as car.api)."""
        image = self.budget.fit(sample["image"], sample.get("image_id"))  # [H, W, 3], H*W <= max_pixels
        passes, info = [], {"steps": [], "kept": [], **self.budget.record(sample["image"])}
        for qp in self.passes:
            queries, label_ids = qp.queries, qp.label_ids
            if self.oracle_queries:
                present = set(np.unique(sample["target"]).tolist())
                chosen = [i for i, lid in enumerate(label_ids) if lid in present]
                if not chosen:
                    continue
                queries, label_ids = [queries[i] for i in chosen], [label_ids[i] for i in chosen]
            result = self.car(image, queries, background_words=qp.background_words, prompt_types=qp.prompt_types)
            ids = [label_ids[i] for i in result.live]
            passes.append((result.maps, result.scores, ids))
            info["steps"].append(result.steps)
            info["kept"].append(ids)
            if keep_results:
                info.setdefault("results", []).append(result)
        sam = self.sam_masks(image) if self.sam_masks is not None else None
        return {"passes": passes, "sam": sam}, info

    def finish(self, image: np.ndarray, proposals: dict) -> np.ndarray:
        """The CPU part (dense CRF, SAM matching, painting); picklable, so it can run in a worker.
        image: the full-size [H0, W0, 3]; the label map is painted at the size CaR ran at, then
        brought back to [H0, W0] (nearest)."""
        small = self.budget.fit(image)  # the copy propose ran on, [H, W, 3]
        label_map = np.zeros(small.shape[:2], dtype=np.int64)
        for maps, scores, ids in proposals["passes"]:
            masks = semantic_masks(small, maps, self.crf, self.bg_factor, self.background)  # [K, H, W]
            if self.sam_match is not None and proposals["sam"] is not None:
                masks = self.sam_match(masks, proposals["sam"])  # §7.5, then painted as §7.3
            label_map = paint_label_map(masks, scores, ids, small.shape[:2], base=label_map)
        return self.budget.restore(label_map, image.shape[:2])  # [H0, W0]

    def cpu_part(self) -> SemanticCaR:
        """A copy without the CLIP and SAM models, cheap to send to a worker process."""
        return SemanticCaR(None, [], self.crf, self.bg_factor, self.background, sam_match=self.sam_match,
                           budget=self.budget)


class ReferringCaR:
    """CaR over the expressions of one evaluation unit, merged into one mask.

    Each surviving expression gets its own two-class CRF mask (§7.2); the final mask is the
    score-weighted vote Σ s_k m_k / Σ s_k >= vote_threshold, or, if that covers <= min_area of
    the image, the union of the surviving masks.
    crf_onehot_fixed=False reproduces quirk Q19: an expression whose CRF mask is empty is dropped
    and the later masks shift onto the earlier expressions' scores.
    `budget`: as in SemanticCaR (the mask comes back at the image's own size).
    """

    def __init__(self, car: CaR, crf: DenseCRF | None, bg_factor: float = 1.0, vote_threshold: float = 0.5,
                 min_area: float = 0.05, crf_onehot_fixed: bool = True, sam_masks=None, sam_match=None,
                 budget: PixelBudget | None = None):
        self.car = car
        self.budget = budget or PixelBudget()
        self.sam_masks = sam_masks  # as in SemanticCaR: each expression's CRF mask is matched before the vote
        self.sam_match = sam_match
        self.crf = crf
        self.bg_factor = bg_factor
        self.vote_threshold = vote_threshold
        self.min_area = min_area
        self.crf_onehot_fixed = crf_onehot_fixed

    @property
    def models(self) -> list:
        """SAM's model (postprocess=sam), moved to the device with the CLIPs."""
        return [self.sam_masks.sam] if self.sam_masks is not None else []

    def __call__(self, sample: dict) -> tuple[np.ndarray, dict]:
        proposals, info = self.propose(sample)
        return self.finish(sample["image"], proposals), info

    def propose(self, sample: dict):
        sentences = [clean_referring_expression(s) for s in sample["sentences"]]
        image = self.budget.fit(sample["image"], sample.get("image_id"))  # [H, W, 3], H*W <= max_pixels
        result = self.car(image, sentences)
        ids = sample.get("sentence_ids", list(range(len(sentences))))
        sam = self.sam_masks(image) if self.sam_masks is not None else None
        proposals = {"maps": result.maps, "scores": result.scores, "sam": sam}
        info = {"steps": [result.steps], "kept": [[ids[i] for i in result.live]], **self.budget.record(sample["image"])}
        return proposals, info

    def finish(self, image: np.ndarray, proposals: dict) -> np.ndarray:
        """image: the full-size [H0, W0, 3] -> int64 mask [H0, W0] (made at CaR's size, then nearest)."""
        full_size, image = image.shape[:2], self.budget.fit(image)  # the copy propose ran on, [H, W, 3]
        maps, scores = proposals["maps"], proposals["scores"]
        masks = [binary_mask(image, m, self.crf, self.bg_factor) for m in maps]  # K x [H, W] bool
        if not self.crf_onehot_fixed:
            masks = [m for m in masks if m.any()]
        masks = masks[: len(scores)]  # Q17 official: maps carried over from a longer step pair up in order
        if self.sam_match is not None and proposals["sam"] is not None and masks:
            masks = list(self.sam_match(np.stack(masks), proposals["sam"]))
        mask = merge_expression_masks(masks, scores[: len(masks)], self.vote_threshold, self.min_area, image.shape[:2])
        return self.budget.restore(mask.astype(np.int64), full_size)  # [H0, W0]

    def cpu_part(self) -> ReferringCaR:
        return ReferringCaR(None, self.crf, self.bg_factor, self.vote_threshold, self.min_area, self.crf_onehot_fixed,
                            sam_match=self.sam_match, budget=self.budget)


def merge_expression_masks(masks: list[np.ndarray], scores: np.ndarray, vote_threshold: float, min_area: float,
                           shape: tuple[int, int]) -> np.ndarray:
    """§8 final mask from surviving expressions' masks and scores. -> [H, W] bool."""
    if not masks:
        return np.zeros(shape, dtype=bool)
    stack = np.stack(masks).astype(np.float64)  # [K, H, W]
    weights = np.asarray(scores, dtype=np.float64)
    vote = np.tensordot(weights, stack, axes=1) / max(weights.sum(), 1e-12)  # [H, W]
    mask = vote >= vote_threshold
    if mask.mean() <= min_area:
        mask = stack.any(axis=0)
    return mask
