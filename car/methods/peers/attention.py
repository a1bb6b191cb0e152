"""The last visual block of each peer method, on an open_clip ViT block.

Every peer keeps CLIP's first L-1 blocks and changes only the last. With z = ln_1(x), per head
q, k, v = the block's own projections of z, s = 1/sqrt(head_dim), and A the attention weights:

    y = out_proj(A v)                   (heads concatenated)
    y = x + y          if residual      (layer scale ls_1 applied as in the plain block)
    y = y + mlp(ln_2 y) if ffn          (layer scale ls_2 likewise)

| method    | attention `kind` | A                                   | residual | FFN     |
|-----------|------------------|-------------------------------------|----------|---------|
| CLIP      | qk               | softmax(s q k^T)                    | kept     | kept    |
| MaskCLIP  | value            | identity: y = out_proj(v)           | kept     | kept    |
| SCLIP     | csa              | softmax(s q q^T) + softmax(s k k^T) | kept     | kept    |
| ClearCLIP | qq               | softmax(s q q^T)                    | removed  | removed |
| NACLIP    | kk_gaussian      | softmax(s k k^T + Omega)            | removed  | removed |

Omega (NACLIP) is a Gaussian of the distance between two patches on the patch grid,
exp(-|p - p'|^2 / (2 std^2)) with std = 5 patches by default, and 0 wherever the CLS token is
involved. SCLIP's weights are the plain sum of two softmaxes (rows sum to 2), as published.
Sources (formulas and constants only): the papers and their official code, cited in
results/published.yaml (`peers:`); MaskCLIP's residual + FFN around the value path are those of
its official ViT backbone; ClearCLIP's re-implementation of MaskCLIP drops both
(`method.last_block.residual=false method.last_block.ffn=false`).
"""

from __future__ import annotations

import math

import torch

from car.settings.enums import ATTENTION_KINDS


def split_heads(block, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The block's q, k, v of normalised tokens z [B, T, C], each [B, heads, T, C/heads]."""
    mha = block.attn
    b, t, c = z.shape
    heads = mha.num_heads
    q, k, v = torch.nn.functional.linear(z, mha.in_proj_weight, mha.in_proj_bias).chunk(3, dim=-1)
    return tuple(y.reshape(b, t, heads, c // heads).transpose(1, 2) for y in (q, k, v))


def neighbourhood_bias(h: int, w: int, std: float, with_cls: bool = True) -> torch.Tensor:
    """NACLIP's Omega on an h x w patch grid (row-major tokens): [h*w, h*w], or [1+h*w, 1+h*w]
    with a zero row and column for the CLS token in front."""
    rows = torch.arange(h, dtype=torch.float64).repeat_interleave(w)  # [h*w] row of each patch
    cols = torch.arange(w, dtype=torch.float64).repeat(h)  # [h*w] column of each patch
    dist2 = (rows[:, None] - rows[None, :]) ** 2 + (cols[:, None] - cols[None, :]) ** 2  # [h*w, h*w]
    omega = torch.exp(-dist2 / (2.0 * std**2)).float()
    if with_cls:
        omega = torch.nn.functional.pad(omega, (1, 0, 1, 0))  # [1+h*w, 1+h*w], CLS row/column = 0
    return omega


def attention_weights(kind: str, q: torch.Tensor, k: torch.Tensor, grid: tuple[int, int] | None = None,
                      gaussian_std: float | None = None) -> torch.Tensor:
    """A [B, heads, T, T] of one attention kind (not defined for "value": A is the identity)."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    if kind == "qk":
        return torch.softmax(scale * q @ k.transpose(-2, -1), dim=-1)
    if kind == "csa":
        return (torch.softmax(scale * q @ q.transpose(-2, -1), dim=-1)
                + torch.softmax(scale * k @ k.transpose(-2, -1), dim=-1))
    if kind == "qq":
        return torch.softmax(scale * q @ q.transpose(-2, -1), dim=-1)
    if kind == "kk_gaussian":
        if grid is None or not gaussian_std:
            raise ValueError("kk_gaussian attention needs the patch grid (h, w) and a positive gaussian_std")
        omega = neighbourhood_bias(*grid, gaussian_std).to(q.device, q.dtype)  # [T, T]
        if omega.shape[-1] != q.shape[-2]:
            raise ValueError(f"grid {grid} gives {omega.shape[-1]} tokens, the block has {q.shape[-2]}")
        return torch.softmax(scale * k @ k.transpose(-2, -1) + omega, dim=-1)
    raise ValueError(f"unknown attention kind {kind!r}; expected one of {ATTENTION_KINDS}")


def changed_last_block(block, x: torch.Tensor, kind: str, residual: bool, ffn: bool,
                       grid: tuple[int, int] | None = None, gaussian_std: float | None = None) -> torch.Tensor:
    """Run `block` on tokens x [B, T, C] with the attention, residual and FFN of one peer -> [B, T, C]."""
    b, t, c = x.shape
    q, k, v = split_heads(block, block.ln_1(x))  # [B, heads, T, d]
    if kind == "value":
        mixed = v  # identity attention: every token keeps its own value
    else:
        mixed = attention_weights(kind, q, k, grid, gaussian_std) @ v  # [B, heads, T, d]
    y = block.attn.out_proj(mixed.transpose(1, 2).reshape(b, t, c))  # [B, T, C]
    if residual:
        y = x + block.ls_1(y)
    if ffn:
        y = y + block.ls_2(block.mlp(block.ln_2(y)))
    return y
