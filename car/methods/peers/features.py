"""Dense patch embeddings in CLIP's text space, through a changed last block.

    images [B, 3, H, W] (normalised, H and W multiples of the patch size)
      -> tokens after ln_pre, positions interpolated to the h x w grid   (car/clip/surgery.py)
      -> blocks 1 .. L-1 unchanged                                        (car/clip/surgery.py)
      -> the method's last block                                          (attention.py)
      -> patch tokens -> ln_post -> proj -> L2 normalised                 [B, D, h, w]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from car.clip.surgery import embed_tokens, num_blocks, project, run_blocks
from car.methods.peers.attention import ATTENTION_KINDS, changed_last_block


@dataclass(frozen=True)
class LastBlock:
    """How a method changes CLIP's last visual block (see attention.py for the formulas)."""

    attention: str  # one of attention.ATTENTION_KINDS
    residual: bool
    ffn: bool
    gaussian_std: float | None = None  # NACLIP's neighbourhood std, in patches

    def __post_init__(self):
        if self.attention not in ATTENTION_KINDS:
            raise ValueError(f"last_block.attention must be one of {ATTENTION_KINDS}, got {self.attention!r}")


def dense_embeddings(visual, images: torch.Tensor, last: LastBlock, pos_mode: str = "bicubic") -> torch.Tensor:
    """Unit-norm patch embeddings [B, D, h, w] of normalised images [B, 3, H, W]."""
    x, h, w = embed_tokens(visual, images, pos_mode=pos_mode)  # [B, 1+h*w, C]
    x, _ = run_blocks(visual, x, range(num_blocks(visual) - 1))
    x = changed_last_block(visual.transformer.resblocks[-1], x, last.attention, last.residual, last.ffn,
                           grid=(h, w), gaussian_std=last.gaussian_std)  # [B, 1+h*w, C]
    patches = F.normalize(project(visual, x[:, 1:]), dim=-1)  # [B, h*w, D]
    b, _, d = patches.shape
    return patches.transpose(1, 2).reshape(b, d, h, w)


def patch_logits(visual, images: torch.Tensor, class_embeddings: torch.Tensor, last: LastBlock,
                 pos_mode: str = "bicubic") -> torch.Tensor:
    """Cosine similarity of every patch with every query: [B, Q, h, w] (class_embeddings [Q, D], unit norm)."""
    feats = dense_embeddings(visual, images, last, pos_mode)  # [B, D, h, w]
    return torch.einsum("bdhw,qd->bqhw", feats, class_embeddings.to(feats.dtype))
