"""Explicit forward passes through an open_clip visual tower.

open_clip's blocks do not return attention weights and pool tokens in their own way; CaR needs
the head-averaged attention of every block, the `ln_1` activation of the last block (gradCAM),
patch-token mean pooling (proposals) and CLS pooling after L-1 blocks (classifier). So the
block forward is written out here, for image inputs only (dispatch by modality, not by length).

Notation: B images, N = h*w patch tokens (+1 CLS), C = width, L = number of blocks.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def interpolate_pos_embed(pos: torch.Tensor, h: int, w: int, fp16_round: bool = False,
                          mode: str = "bilinear") -> torch.Tensor:
    """Resize the patch part of a positional table to an h x w grid.

    pos: [1 + g*g, C] (CLS entry first) -> [1 + h*w, C]. `mode` "bilinear" (CaR) or "bicubic"
    (the peer methods, car/methods/peers), align_corners=False.
    `fp16_round` reproduces the official code's rounding of the table to half precision.
    """
    cls_pos, patch_pos = pos[:1], pos[1:]
    g = math.isqrt(patch_pos.shape[0])
    if (g, g) != (h, w):
        grid = patch_pos.reshape(1, g, g, -1).permute(0, 3, 1, 2)  # [1, C, g, g]
        grid = F.interpolate(grid.float(), size=(h, w), mode=mode, align_corners=False)
        patch_pos = grid.permute(0, 2, 3, 1).reshape(h * w, -1).to(pos.dtype)  # [h*w, C]
    out = torch.cat([cls_pos, patch_pos], dim=0)
    if fp16_round:
        out = out.half().to(pos.dtype)
    return out


def embed_tokens(visual, images: torch.Tensor, fp16_round: bool = False,
                 pos_mode: str = "bilinear") -> tuple[torch.Tensor, int, int]:
    """Patch-embed images and add (interpolated) positions; returns tokens after ln_pre.

    images: [B, 3, H', W'] with H', W' multiples of the patch size -> tokens [B, 1+N, C], h, w.
    """
    x = visual.conv1(images)  # [B, C, h, w]
    b, c, h, w = x.shape
    x = x.reshape(b, c, h * w).permute(0, 2, 1)  # [B, N, C]
    cls = visual.class_embedding.to(x.dtype).expand(b, 1, c)
    x = torch.cat([cls, x], dim=1)  # [B, 1+N, C]
    x = x + interpolate_pos_embed(visual.positional_embedding, h, w, fp16_round, pos_mode).to(x.dtype)
    return visual.ln_pre(x), h, w


def attention(block, z: torch.Tensor, need_weights: bool,
              weights_without_grad: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Multi-head self-attention of an open_clip block on normalised tokens z [B, T, C].

    Returns the attention output [B, T, C] and, if asked, the head-averaged softmax weights
    [B, T, T] (rows = attending token, columns = attended token).
    weights_without_grad=True: the output comes from the fused attention kernel (its backward
    never holds the [B, heads, T, T] weights, which a batched gradCAM backward would copy per
    query) and the weights are computed beside it, outside autograd.
    """
    mha = block.attn
    b, t, c = z.shape
    heads = mha.num_heads
    q, k, v = F.linear(z, mha.in_proj_weight, mha.in_proj_bias).chunk(3, dim=-1)
    q, k, v = (y.reshape(b, t, heads, c // heads).transpose(1, 2) for y in (q, k, v))  # [B, heads, T, d]
    if need_weights and weights_without_grad:
        out = F.scaled_dot_product_attention(q, k, v)
        with torch.no_grad():
            avg = torch.softmax((q @ k.transpose(-2, -1)) / math.sqrt(c // heads), dim=-1).mean(dim=1)  # [B, T, T]
    elif need_weights:
        weights = torch.softmax((q @ k.transpose(-2, -1)) / math.sqrt(c // heads), dim=-1)  # [B, heads, T, T]
        out = weights @ v
        avg = weights.mean(dim=1)
    else:
        out = F.scaled_dot_product_attention(q, k, v)
        avg = None
    out = out.transpose(1, 2).reshape(b, t, c)
    return mha.out_proj(out), avg


def block_forward(block, x: torch.Tensor, need_weights: bool = False, z: torch.Tensor | None = None,
                  weights_without_grad: bool = False):
    """One residual block: x + ls_1(attn(ln_1 x)); then + ls_2(mlp(ln_2 .)).

    `z` may be given as a precomputed (e.g. gradient-tracked) ln_1(x). Returns (x_out, attn|None).
    """
    z = block.ln_1(x) if z is None else z
    a, weights = attention(block, z, need_weights, weights_without_grad)
    x = x + block.ls_1(a)
    if torch.is_grad_enabled() or not isinstance(block.ls_2, torch.nn.Identity):
        return x + block.ls_2(block.mlp(block.ln_2(x))), weights
    return x.add_(mlp_inference(block, x)), weights  # x is this function's own tensor here


MLP_ROWS = 1024  # most tokens per MLP chunk: the [rows, 4C] hidden activation stays in the CPU's cache


def mlp_inference(block, x: torch.Tensor) -> torch.Tensor:
    """block.mlp(block.ln_2(x)) without autograd, in chunks of MLP_ROWS tokens: x [..., C] -> [..., C].

    The hidden activation [tokens, 4C] is the largest tensor of a ViT forward; made and consumed
    one chunk at a time in two reused buffers it stays in the cache and never page-faults (a fifth
    faster on CPU for a batch of 20 prompted images; tests/test_surgery.py checks the values).
    QuickGELU, x·sigmoid(1.702x), is applied in place with the same operations in the same order as
    open_clip's module; other activations and bias-free layers go through the modules."""
    mlp = block.mlp
    flat = x.reshape(-1, x.shape[-1])  # [tokens, C]
    out = torch.empty_like(flat)
    n = flat.shape[0]
    chunk = -(-n // -(-n // MLP_ROWS))  # equal chunks of at most MLP_ROWS tokens
    fc, proj = mlp.c_fc, mlp.c_proj
    fast = (type(mlp.gelu).__name__ == "QuickGELU"  # open_clip's class (x * sigmoid(1.702 * x))
            and all(isinstance(m, torch.nn.Linear) and m.bias is not None for m in (fc, proj)))
    if fast:
        hidden_buf = flat.new_empty(chunk, fc.out_features)  # [rows, 4C], reused by every chunk
        gate_buf = torch.empty_like(hidden_buf)
    for start in range(0, n, chunk):
        rows = slice(start, min(start + chunk, n))
        normed = block.ln_2(flat[rows])  # [rows, C]
        if fast:
            m = normed.shape[0]
            hidden = torch.addmm(fc.bias, normed, fc.weight.t(), out=hidden_buf[:m])
            hidden.mul_(torch.mul(hidden, 1.702, out=gate_buf[:m]).sigmoid_())
            torch.addmm(proj.bias, hidden, proj.weight.t(), out=out[rows])
        else:
            out[rows] = mlp.c_proj(mlp.gelu(mlp.c_fc(normed)))
    return out.view_as(x)


def run_blocks(visual, x: torch.Tensor, blocks: range, need_weights: bool = False):
    """Run blocks[i] for i in `blocks`; returns (x, list of attention maps or [])."""
    resblocks = visual.transformer.resblocks
    maps = []
    for i in blocks:
        x, weights = block_forward(resblocks[i], x, need_weights)
        if need_weights:
            maps.append(weights)
    return x, maps


def num_blocks(visual) -> int:
    return len(visual.transformer.resblocks)


def project(visual, tokens: torch.Tensor) -> torch.Tensor:
    """ln_post then the visual projection: [..., C] -> [..., D]."""
    y = visual.ln_post(tokens)
    return y @ visual.proj if visual.proj is not None else y


def encode_cls(visual, images: torch.Tensor, skip_last_block: bool, fp16_round: bool = False) -> torch.Tensor:
    """CLS-pooled, L2-normalised image embeddings [B, D] (the mask classifier's encoder).

    skip_last_block=True is the official CaR quirk: the CLS token is read after block L-1.
    fp16_round: quirk Q3, which the official code applies to the classifier too (one wrapper for
    both CLIPs); lossless for OpenAI's float16 checkpoints at the native grid, not for fp32 ones.
    """
    x, _, _ = embed_tokens(visual, images, fp16_round)
    depth = num_blocks(visual) - (1 if skip_last_block else 0)
    x, _ = run_blocks(visual, x, range(depth - 1))
    cls = cls_block_forward(visual.transformer.resblocks[depth - 1], x)  # [B, 1, C]
    return F.normalize(project(visual, cls[:, 0]), dim=-1)


def cls_block_forward(block, x: torch.Tensor) -> torch.Tensor:
    """block_forward's output for the CLS token alone: x [B, T, C] -> [B, 1, C]. The other tokens
    only lend their keys and values (no queries, output projection or MLP for them)."""
    mha = block.attn
    b, _, c = x.shape
    heads = mha.num_heads
    z = block.ln_1(x)
    w, bias = mha.in_proj_weight, mha.in_proj_bias
    q = F.linear(z[:, :1], w[:c], bias[:c] if bias is not None else None)  # [B, 1, C]
    k, v = F.linear(z, w[c:], bias[c:] if bias is not None else None).chunk(2, dim=-1)  # [B, T, C] each
    q, k, v = (y.reshape(b, -1, heads, c // heads).transpose(1, 2) for y in (q, k, v))  # [B, heads, 1 or T, d]
    a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, 1, c)
    out = x[:, :1] + block.ls_1(mha.out_proj(a))
    if torch.is_grad_enabled() or not isinstance(block.ls_2, torch.nn.Identity):
        return out + block.ls_2(block.mlp(block.ln_2(out)))
    return out.add_(mlp_inference(block, out))
