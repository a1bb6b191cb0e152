"""Text side of CaR: query forms, templates and cached text embeddings (CAR_SPEC §2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from car.clip.load import ClipModel

ORIGAMI = "a clean origami {}."  # step >= 2 proposal text and background-word text (§2.1, §2.2)


def origami(query: str) -> str:
    return ORIGAMI.format(query)


def fill(template: str, query: str) -> str:
    return template.replace("{}", query)


def clean_referring_expression(sentence: str) -> str:
    """§2.5: lower-case and delete the characters `"` and `/`; nothing else."""
    return sentence.lower().replace('"', "").replace("/", "")


class TextEncoder:
    """Unit-norm CLIP text embeddings with a per-string cache.

    The cache lives as long as the encoder (one per CLIP model), so templates, background words
    and class names are embedded once per run, whatever the number of images.
    """

    def __init__(self, clip: ClipModel, batch_size: int = 256):
        self.clip = clip
        self.batch_size = batch_size
        self._cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def __call__(self, texts: list[str]) -> torch.Tensor:
        """texts: n strings -> [n, D] unit-norm embeddings (float32, on the model's device)."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        for start in range(0, len(missing), self.batch_size):
            chunk = missing[start : start + self.batch_size]
            tokens = self.clip.tokenizer(chunk).to(self.clip.device)  # [n, context]; long texts truncated
            emb = F.normalize(self.clip.model.encode_text(tokens).float(), dim=-1)  # [n, D]
            self._cache.update(zip(chunk, emb))
        if not texts:
            return torch.empty(0, self.embed_dim, device=self.clip.device)
        return torch.stack([self._cache[t] for t in texts])

    @property
    def embed_dim(self) -> int:
        return int(self.clip.model.text_projection.shape[1])
