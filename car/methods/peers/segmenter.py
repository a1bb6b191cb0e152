"""A peer method as a segmenter of one dataset sample, with SemanticCaR's interface.

    propose(sample)          the CLIP part: resize, (sliding) dense logits  -> logits [Q, H', W']
    finish(image, logits)    the CPU part: upsample to [Q, H, W], optional PAMR, decide -> [H, W]
    cpu_part()               a copy without the CLIP model, for the predictor's worker pool

so the predict-only Lightning module, the prediction store and the metrics treat every method
alike. `info` follows CaR's per-image record: one step, every class kept (nothing is pruned).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from car.clip.load import ClipModel
from car.clip.text import TextEncoder
from car.methods.peers.decision import label_map
from car.methods.peers.features import LastBlock, patch_logits
from car.methods.peers.pamr import pamr
from car.methods.peers.sliding import resize_short_side, sliding_logits
from car.methods.peers.text import ClassQueries, class_embeddings

AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class InputGeometry:
    """Pixel sizes for the backbone in use (already scaled from the paper's 224-px values)."""

    short_side: int
    max_long_side: int
    crop: int | None  # None: one pass over the whole resized image
    stride: int | None


@dataclass(frozen=True)
class Decision:
    logit_scale: float
    prob_threshold: float = 0.0
    area_threshold: float | None = None


@dataclass(frozen=True)
class Refinement:
    """Optional PAMR on the logits upsampled to the image size. The affinity reads the original image
    (NACLIP's code reads its network input resized back to that size: the same up to that resize's blur)."""

    iterations: int = 0  # 0: off
    dilations: tuple[int, ...] = (8, 16)


class PeerSegmenter:
    budget = None  # the peers size their own input (geometry)
    sam_masks = None  # SAM refines CaR's masks only

    def __init__(self, name: str, clip: ClipModel | None, last_block: LastBlock, classes: ClassQueries,
                 templates: list[str], geometry: InputGeometry, decision: Decision,
                 refinement: Refinement = Refinement(), pos_mode: str = "bicubic", precision: str = "fp32",
                 text_cache: str | None = None):
        self.name = name
        self.clip = clip
        self.last_block = last_block
        self.classes = classes
        self.templates = templates
        self.geometry = geometry
        self.decision = decision
        self.refinement = refinement
        self.pos_mode = pos_mode
        self.precision = precision
        self.text = TextEncoder(clip, cache_dir=text_cache) if clip is not None else None
        self._embeddings: torch.Tensor | None = None  # [Q, D], computed on first use (model on its device)

    @property
    def models(self) -> list[torch.nn.Module]:
        return []  # its CLIP is the backbone's, moved by the predictor

    def __call__(self, sample: dict) -> tuple[np.ndarray, dict]:
        logits, info = self.propose(sample)
        return self.finish(sample["image"], logits), info

    def class_embeddings(self) -> torch.Tensor:
        device = self.clip.device
        if self._embeddings is None or self._embeddings.device != device:
            self._embeddings = class_embeddings(self.text, self.classes.queries, self.templates)  # [Q, D]
        return self._embeddings

    def normalise(self, image: np.ndarray) -> torch.Tensor:
        """uint8 [H, W, 3] -> resized, CLIP-normalised float [1, 3, H', W'] on the model's device."""
        x = torch.from_numpy(np.ascontiguousarray(image)).to(self.clip.device).permute(2, 0, 1)[None].float() / 255
        x = resize_short_side(x, self.geometry.short_side, self.geometry.max_long_side)
        mean = torch.tensor(self.clip.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.clip.std, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std

    @torch.no_grad()
    def propose(self, sample: dict) -> tuple[np.ndarray, dict]:
        """The CLIP part: query logits [Q, H', W'] (float32) at the resized resolution."""
        texts = self.class_embeddings()  # [Q, D]
        image = self.normalise(sample["image"])  # [1, 3, H', W']
        device = image.device.type
        dtype = AUTOCAST.get(self.precision)
        autocast = dtype is not None and device == "cuda"
        amp = torch.autocast(device, dtype=dtype) if autocast else contextlib.nullcontext()

        def logits_fn(window: torch.Tensor) -> torch.Tensor:
            return patch_logits(self.clip.visual, window, texts, self.last_block, self.pos_mode)  # [1, Q, h, w]

        with amp:
            logits = sliding_logits(logits_fn, image, self.clip.patch_size, self.geometry.crop, self.geometry.stride)
        info = {"steps": [1], "kept": [list(self.classes.label_ids)]}  # one pass, nothing pruned
        return logits.float().cpu().numpy(), info

    def finish(self, image: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """The CPU part: logits [Q, H', W'] -> label map [H, W] int64 at the image's size."""
        h, w = image.shape[:2]
        full = F.interpolate(torch.from_numpy(logits)[None], size=(h, w), mode="bilinear", align_corners=False)
        if self.refinement.iterations > 0:
            rgb = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255  # [1, 3, H, W]
            full = pamr(rgb, full, self.refinement.iterations, self.refinement.dilations)
        d = self.decision
        return label_map(full[0], self.classes.query_class, self.classes.label_ids, d.logit_scale,
                         d.prob_threshold, d.area_threshold)

    def cpu_part(self) -> PeerSegmenter:
        """A copy without the CLIP model and text encoder (cheap to send to a worker process)."""
        twin = PeerSegmenter.__new__(PeerSegmenter)
        twin.__dict__.update(self.__dict__)
        twin.clip, twin.text, twin._embeddings = None, None, None
        return twin

