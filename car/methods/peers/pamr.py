"""Pixel-adaptive mask refinement, PAMR (Araslanov & Roth, "Single-Stage Semantic Segmentation
from Image Labels", CVPR 2020), written from the paper's description.

Each pixel i has the neighbours j at the 8 offsets {-d, 0, d}^2 \\ (0, 0) of every dilation d
(image borders replicated). Their affinity compares colours relative to the local spread:

    k_ij = -(1/K) sum_c |I_c(i) - I_c(j)| / (lambda * sigma_c(i))      lambda = 0.1
    a_ij = softmax_j k_ij                                                over all 8 * |dilations| j

where sigma_c(i) is the (unbiased) standard deviation of channel c over pixel i and its
neighbours, i repeated once per dilation. The masks are then propagated `iterations` times,
m_i <- sum_j a_ij m_j (the pixel itself is not among its neighbours). The paper's setting is 10
iterations with dilations 1, 2, 4, 8, 12, 24; NACLIP's official code uses dilations 8 and 16.
Colour normalisation does not matter: a per-channel affine change scales |I(i) - I(j)| and
sigma alike.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F

PAPER_DILATIONS = (1, 2, 4, 8, 12, 24)
PAPER_ITERATIONS = 10
OFFSETS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def neighbours(x: torch.Tensor, dilations: Sequence[int]) -> Iterator[torch.Tensor]:
    """x [B, C, H, W] seen from each neighbour offset (replicated borders): 8 * len(dilations) tensors."""
    h, w = x.shape[-2:]
    for d in dilations:
        padded = F.pad(x, (d, d, d, d), mode="replicate")  # [B, C, H + 2d, W + 2d]
        for dy, dx in OFFSETS:
            yield padded[..., d + dy * d : d + dy * d + h, d + dx * d : d + dx * d + w]


def affinity(image: torch.Tensor, dilations: Sequence[int], lam: float = 0.1) -> torch.Tensor:
    """Neighbour weights [B, P, H, W] (P = 8 * len(dilations), summing to 1 over P) of image [B, K, H, W]."""
    image = image.float()
    shifted = torch.stack(list(neighbours(image, dilations)), dim=2)  # [B, K, P, H, W]
    centre = image.unsqueeze(2)  # [B, K, 1, H, W]
    per_dilation = shifted.unflatten(2, (len(dilations), len(OFFSETS)))  # [B, K, D, 8, H, W]
    local = torch.cat([centre.unsqueeze(2).expand(-1, -1, len(dilations), -1, -1, -1), per_dilation], dim=3)
    sigma = local.flatten(2, 3).std(dim=2, keepdim=True)  # [B, K, 1, H, W] over 9 * D values
    logits = -(centre - shifted).abs() / (1e-8 + lam * sigma)  # [B, K, P, H, W]
    return torch.softmax(logits.mean(dim=1), dim=1)  # [B, P, H, W]


def pamr(image: torch.Tensor, masks: torch.Tensor, iterations: int = PAPER_ITERATIONS,
         dilations: Sequence[int] = PAPER_DILATIONS, lam: float = 0.1) -> torch.Tensor:
    """Refine masks [B, C, H, W] (any real values, e.g. class logits) with image [B, K, H, W]."""
    if image.shape[-2:] != masks.shape[-2:]:
        raise ValueError(f"image {tuple(image.shape)} and masks {tuple(masks.shape)} differ in size")
    weights = affinity(image, dilations, lam)  # [B, P, H, W]
    out = masks.float()
    for _ in range(iterations):
        refined = torch.zeros_like(out)
        for p, shifted in enumerate(neighbours(out, dilations)):
            refined += weights[:, p : p + 1] * shifted  # [B, C, H, W]
        out = refined
    return out
