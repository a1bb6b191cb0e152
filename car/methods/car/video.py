"""Video CaR: the referring CaR run on every frame of a clip, its objects merged into one label map.

The official release has no video code and the paper (§4.3) says only that the referring setting
is applied to video; what we do, and what each setting means:

* Per frame, the referring CaR (CAR_SPEC §8: one gradCAM per expression, single classifier text
  "a clean origami {expr}.", the recurrence of §6, a two-class CRF per surviving expression, §7.2).
* `expressions=together` (default): the expressions of all the clip's objects are the queries of
  ONE CaR run per frame, so they compete in the classifier and the recurrence prunes the objects
  a frame does not show (an object that enters later is not painted before it appears).
  `expressions=separately`: one CaR run per (frame, expression), K = 1: nothing is ever pruned
  and every final score is 1 (the referring protocol's unit=sentence, applied per object).
* Merge rule (`merge_object_masks`): a pixel covered by several objects' masks goes to the object
  with the higher final classifier score; on equal scores, to the one whose proposal map (the
  CRF's input) is higher at that pixel; then to the lower object id. Pruned expressions paint nothing.
* Quirk Q19 (referring: an empty CRF mask is dropped and later masks shift onto other
  expressions) does not apply: each object keeps its own mask, as there is no official video
  code whose bug to reproduce. Q35 (the classifier's character-wise text filter) follows
  `car.quirks.refer_text_filter` as in every referring run.

Text embeddings: the two TextEncoders cache every string for the run, so an expression is
embedded once (its first frame) and every later frame, and every later video using the same
words, reuses it. Frames go through CaR one at a time: each needs its own gradCAM backward and
the live sets of different frames diverge; the classifier batches each frame's prompted images.
"""

from __future__ import annotations

import time

import numpy as np

from car.methods.car.recurrence import CaR
from car.methods.car.text import clean_referring_expression
from car.methods.pixel_budget import PixelBudget
from car.postprocess.crf import DenseCRF, binary_mask
from car.settings.enums import VIDEO_EXPRESSIONS as EXPRESSION_MODES


def merge_object_masks(masks: np.ndarray, scores: np.ndarray, ids: list[int], maps: np.ndarray) -> np.ndarray:
    """One frame's object masks -> label map [H, W] uint8 (0 background, else the object id).

    masks [K, H, W] bool, scores [K] final classifier scores, ids [K] object ids, maps [K, H, W]
    proposal maps. Where masks overlap: the higher score wins, then the higher map value, then
    the lower object id (the first in `ids` order, which the caller keeps ascending)."""
    if len(ids) == 0:
        return np.zeros(masks.shape[1:], np.uint8)
    order = np.argsort(np.asarray(ids), kind="stable")
    masks, maps = masks[order], maps[order].astype(np.float64)
    scores, ids = np.asarray(scores, np.float64)[order], np.asarray(ids)[order]
    score_at = np.where(masks, scores[:, None, None], -np.inf)  # [K, H, W]
    best = score_at.max(axis=0)  # [H, W]
    candidates = masks & (score_at == best[None])  # [K, H, W]
    winner = np.where(candidates, maps, -np.inf).argmax(axis=0)  # [H, W]; argmax: the first (lowest id) on ties
    label = ids[winner].astype(np.uint8)
    label[~masks.any(axis=0)] = 0
    return label


class VideoCaR:
    """Segments a video sample: frames uint8 [T, 3, H, W], expressions {object id: text} ->
    (label maps uint8 [T, H, W], info). Each frame runs within `budget` and comes back at full size.
    A `Segmenter` (car/methods/segmenter.py) without the propose/finish split: a video's frames run in order."""

    budget = None  # the pixel budget applies to each frame (frame_budget), not to the sample
    sam_masks = None  # the paper's video CaR uses the dense CRF only

    @property
    def models(self) -> list:
        return []  # its CLIPs are the backbone's

    def __init__(self, car: CaR, crf: DenseCRF | None, bg_factor: float = 1.0, expressions: str = "together",
                 budget: PixelBudget | None = None):
        if expressions not in EXPRESSION_MODES:
            raise ValueError(f"expressions must be one of {EXPRESSION_MODES}, got {expressions!r}")
        self.car = car
        self.crf = crf
        self.bg_factor = bg_factor
        self.expressions = expressions
        self.frame_budget = budget or PixelBudget()

    def __call__(self, sample: dict) -> tuple[np.ndarray, dict]:
        frames = np.asarray(sample["frames"]).transpose(0, 2, 3, 1)  # [T, H, W, 3] uint8
        ids = sorted(int(k) for k in sample["expressions"])
        texts = [clean_referring_expression(sample["expressions"][k]) for k in ids]
        start = time.perf_counter()
        labels = np.zeros(frames.shape[:3], np.uint8)  # [T, H, W]
        info: dict = {"steps": [], "kept": [], "scores": [], "frames": len(frames)}
        for t, frame in enumerate(frames):
            labels[t], steps, kept, scores = self.frame(frame, texts, ids, f"{sample['video_id']} frame {t}")
            info["steps"].append(steps)
            info["kept"].append(kept)
            info["scores"].append(scores)
        info["seconds"] = time.perf_counter() - start
        info["frames_per_s"] = len(frames) / max(info["seconds"], 1e-9)
        info.update(self.frame_budget.record(frames[0]) if len(frames) else {})
        return labels, info

    def frame(self, image: np.ndarray, texts: list[str], ids: list[int], name: str):
        """One frame [H0, W0, 3] -> (label map [H0, W0] uint8, steps, kept object ids, {id: final score})."""
        small = self.frame_budget.fit(image, name)  # [H, W, 3] within the pixel budget
        if self.expressions == "together":
            results = [(self.car(small, texts), list(range(len(texts))))]
        else:
            results = [(self.car(small, [text]), [k]) for k, text in enumerate(texts)]
        masks, scores, kept, maps, steps = [], [], [], [], 0
        for result, positions in results:
            steps = max(steps, result.steps)
            for j, live in enumerate(result.live):
                maps.append(result.maps[j])  # [H, W] float, the final step's proposal
                masks.append(binary_mask(small, result.maps[j], self.crf, self.bg_factor))  # §7.2
                scores.append(float(result.scores[j]))
                kept.append(ids[positions[live]])
        shape = small.shape[:2]
        label = merge_object_masks(np.stack(masks) if masks else np.zeros((0, *shape), bool), np.asarray(scores),
                                   kept, np.stack(maps) if maps else np.zeros((0, *shape), np.float32))
        label = self.frame_budget.restore(label, image.shape[:2])  # [H0, W0]
        return label, steps, kept, {str(k): round(s, 6) for k, s in zip(kept, scores)}
