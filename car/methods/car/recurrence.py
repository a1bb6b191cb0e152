"""The CaR recurrence: propose, prompt, classify, prune; repeat until nothing is pruned (CAR_SPEC §1, §6).

The "hidden state" of the RNN is the ordered list of live queries (original indices). Each step:

    maps   = proposals(live queries)                 [K, H, W]
    images = visual prompts(image, maps)             K x [H, W, 3]
    scores = classifier(images, live queries)        [K]
    keep   = {k : score_k > θ}  (or the argmax if empty)

and the loop stops at the first step that prunes nothing (|keep| equals the previous |keep|,
which starts at 0, so there are always >= 2 steps). The last step's maps are the output.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from car.clip.precision import to_fp16_weights
from car.clip.text import TextEncoder
from car.methods.car.classifier import MaskClassifier
from car.methods.car.prompts import VisualPrompt
from car.methods.car.proposals import ProposalGenerator
from car.methods.car.text import origami
from car.settings.enums import CAR_PRECISIONS, FP16_WEIGHTS


@dataclass
class StepTrace:
    """What one recurrence step saw and decided (the RNN's unrolled state)."""

    live: list[int]  # original indices of the queries entering the step
    scores: np.ndarray  # [K] classifier scores of those queries
    kept: list[int]  # original indices that survived the step (> θ, or the argmax)
    zero_maps: bool = False  # every proposal map of the step was zero (Q17)
    maps: np.ndarray | None = None  # [K, H, W] proposals, kept only when CaR.keep_arrays
    images: list[np.ndarray] | None = None  # K prompted images, kept only when CaR.keep_arrays


@dataclass
class CarResult:
    """Output of one CaR run for K0 original queries on an H x W image."""

    maps: np.ndarray  # [K, H, W] float32 proposal maps of the final step, for `live` (see Q17 below)
    live: list[int]  # original indices of the queries alive at the end, in original order
    scores: np.ndarray  # [K] classifier scores of the final step for `live`
    history: list[list[int]] = field(default_factory=list)  # live set entering each step
    trace: list[StepTrace] = field(default_factory=list)  # one entry per step

    @property
    def steps(self) -> int:
        return len(self.history)


AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}  # mixed precision (Q32)


def prune(scores: torch.Tensor, theta: float) -> list[int]:
    """Positions whose score is strictly above θ; if none, the single best (first on ties)."""
    keep = [i for i, s in enumerate(scores.tolist()) if s > theta]
    return keep or [int(torch.argmax(scores))]


class CaR:
    """CLIP as RNN over one image and a list of text queries.

    Args:
        proposals, classifier, prompt: the three stages.
        proposal_text: text encoder of the PROPOSAL CLIP (queries + background words).
        theta: θ, pruning threshold.
        background_words: embedded as "a clean origami {w}." for the gradCAM softmax only.
        cam_text_after_first: "origami" (official, Q5) or "raw": proposal text from step 2 on.
        max_iterations: None = run until the live set stops changing (paper); n = stop after n
            steps and output that step's maps for all its live queries (1 = no recurrence).
        legacy_unfiltered_templates: quirk Q15 of the 2024 revision (classifier texts not pruned).
        compete: True = queries compete in one gradCAM softmax (semantic); False = referring mode.
        zero_step: quirk Q17, a step whose proposal maps are all zero (from step 2 on). "official":
            the step is scored and pruned as usual (its prompted images are the plain image) and
            the loop goes on, but the maps carried forward are the previous step's, so a run that
            stops there paints the previous step's maps, in order, onto this step's queries
            (`maps` may then hold more entries than `live`; the extra ones only compete in the
            CRF). "correct": return the previous step whole (its maps, queries and scores). At
            step 1 there is no previous map (the official code would crash later); both keep the
            zero maps.
        precision: "fp32"; "bf16"/"fp16": autocast of both CLIPs (float32 weights; GPU speed);
            "fp16_weights": the official CUDA mode (quirk Q32): both CLIPs' weights are cast to
            float16 IN PLACE here and the towers run in float16, gradCAM backward included
            (car/clip/precision.py says what stays float32).
        char_filter_bug: quirk Q35 (referring configs, no template list): from step 2 on the official
            code filters the flat classifier string list as if it were per-template lists, so the
            classifier sees, for every ORIGINAL expression t, the characters of
            "a clean origami {t}." at the original indices of the live expressions, and takes a
            double softmax over those "templates". Positions past the string's end give "".
    """

    def __init__(self, proposals: ProposalGenerator, classifier: MaskClassifier, prompt: VisualPrompt,
                 proposal_text: TextEncoder, theta: float, background_words, cam_text_after_first: str = "origami",
                 max_iterations: int | None = None, legacy_unfiltered_templates: bool = False, compete: bool = True,
                 char_filter_bug: bool = False, precision: str = "fp32", zero_step: str = "official"):
        self.proposals = proposals
        self.classifier = classifier
        self.prompt = prompt
        self.text = proposal_text
        self.theta = float(theta)
        self.background_words = list(background_words)
        self.cam_text_after_first = cam_text_after_first
        self.max_iterations = max_iterations
        self.legacy_unfiltered_templates = legacy_unfiltered_templates
        self.compete = compete
        self.char_filter_bug = char_filter_bug
        if precision not in CAR_PRECISIONS:
            raise ValueError(f"car.precision must be one of {list(CAR_PRECISIONS)}, got {precision!r}")
        self.precision = precision
        self._set_weights_dtype()
        if zero_step not in ("official", "correct"):
            raise ValueError(f"car.quirks.zero_step must be 'official' or 'correct', got {zero_step!r}")
        self.zero_step = zero_step
        self.keep_arrays = False  # True: every StepTrace keeps its maps and prompted images (golden tests)

    def _clips(self) -> list:
        clips = (getattr(self.proposals, "clip", None), getattr(self.classifier, "clip", None))
        return list({id(c): c for c in clips if c is not None and hasattr(c, "model")}.values())

    def _set_weights_dtype(self) -> None:
        """fp16_weights: cast both CLIPs to float16 (in place); other modes need float32 weights."""
        if self.precision == FP16_WEIGHTS:
            for clip in self._clips():
                to_fp16_weights(clip)
        self._check_weights_dtype()

    def _check_weights_dtype(self) -> None:
        """One sentence instead of a dtype clash deep in a tower (e.g. CLIPs shared with a CaR in the other mode)."""
        want = torch.float16 if self.precision == FP16_WEIGHTS else torch.float32
        for clip in self._clips():
            if clip.dtype != want:
                have = str(clip.dtype).replace("torch.", "")
                raise ValueError(f"car.precision={self.precision} needs {str(want).replace('torch.', '')} CLIP "
                                 f"weights, but {clip.arch}'s are {have} (CLIPs shared with a CaR built with "
                                 f"another precision? fp16_weights casts them in place).")

    def __call__(self, image: np.ndarray, queries: list[str], background_words=None, prompt_types=None) -> CarResult:
        self._check_weights_dtype()
        dtype = AUTOCAST_DTYPES.get(self.precision)  # None: no autocast (fp32, fp16_weights)
        device = getattr(getattr(self.proposals, "clip", None), "device", torch.device("cpu"))
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            return self._run(image, queries, background_words, prompt_types)

    def embed_texts(self, queries: list[str], background_words=None) -> None:
        """Embed once, into the encoders' caches, every text a run on `queries` reads: the proposal
        texts (raw and origami), the background words and the classifier's template table. The frames
        of a video then reuse them (same autocast as __call__, so the embeddings are the same)."""
        words = self.background_words if background_words is None else list(background_words)
        dtype = AUTOCAST_DTYPES.get(self.precision)
        device = getattr(getattr(self.proposals, "clip", None), "device", torch.device("cpu"))
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            self.text(list(queries) + [origami(q) for q in queries] + [origami(w) for w in words])
            self.classifier.text_table(self.classifier.texts(list(queries)))

    def _run(self, image, queries, background_words, prompt_types) -> CarResult:
        """image [H, W, 3] uint8 RGB; queries: K0 strings. Background words and prompt types may be
        overridden per call (Pascal Context's stuff pass uses the thing names and blur+gray)."""
        words = self.background_words if background_words is None else list(background_words)
        prompt = self.prompt if prompt_types is None else self.prompt.with_types(prompt_types)
        background = self.text([origami(w) for w in words])  # [B, D]
        encoding = self.proposals.encode(image)  # trunk pass, reused by every step
        live, n_last, step_text = list(range(len(queries))), 0, "raw"
        history: list[list[int]] = []
        trace: list[StepTrace] = []
        previous: CarResult | None = None
        while True:
            history.append(list(live))
            texts = [queries[i] if step_text == "raw" else origami(queries[i]) for i in live]
            maps = self.proposals(encoding, self.text(texts), background, compete=self.compete)  # [K, H, W]
            zero = previous is not None and not maps.any()
            if zero and self.zero_step == "correct":  # Q17 corrected: keep the previous step whole
                trace.append(StepTrace(list(live), np.zeros(0, np.float32), [], zero_maps=True))
                previous.history, previous.trace = history, trace
                return previous
            images = prompt.batch(image, maps)
            scores = self._score(images, queries, live, len(history)).numpy().astype(np.float32)  # [K]
            keep = prune(torch.from_numpy(scores), self.theta)
            trace.append(StepTrace(list(live), scores, [live[j] for j in keep], zero_maps=zero,
                                   maps=maps if self.keep_arrays else None,
                                   images=images if self.keep_arrays else None))
            if zero:  # Q17 official: carry the previous step's maps forward, with this step's queries
                maps = previous.maps
            result = CarResult(maps=maps, live=list(live), scores=scores, history=history, trace=trace)
            if len(keep) == n_last or (self.max_iterations and len(history) >= self.max_iterations):
                return result
            previous, n_last = result, len(keep)
            live = [live[j] for j in keep]
            step_text = "origami" if self.cam_text_after_first == "origami" else "raw"

    def _score(self, images, queries, live, step: int) -> torch.Tensor:
        """Classifier scores [K] of the K prompted images of `step` (1-based)."""
        if self.char_filter_bug and step >= 2:
            return self.classifier.score(images, self.classifier_table(queries, live, step))
        competing = queries if self.legacy_unfiltered_templates else [queries[i] for i in live]
        return self.classifier(images, competing)  # [K]

    def classifier_table(self, queries: list[str], live: list[int], step: int) -> list[list[str]]:
        """The classifier's text table at `step`: texts[t][j] for template t and competing query j."""
        if self.char_filter_bug and step >= 2:  # Q35: characters of the ORIGINAL strings at live positions
            strings = [origami(q) for q in queries]
            return [[s[i] if i < len(s) else "" for i in live] for s in strings]  # [K0][K]
        competing = queries if self.legacy_unfiltered_templates else [queries[i] for i in live]
        return self.classifier.texts(competing)
