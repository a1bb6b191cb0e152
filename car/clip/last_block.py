"""The proposal CLIP's last block, run once per image, and gradCAM's channel weights by hand.

gradCAM (CAR_SPEC §3.3) needs, for every query k, the channel weights

    a_k = mean over patch tokens i of  d p_k / d z_i        z = ln_1(x), the last block's normalised input,

where p_k depends on z only through the patch-mean pooled embedding u (last block, ln_post, projection,
mean over patches). Autograd gets a_k from a full backward per query: every token's gradient through
the MLP, the attention (its T x T weights per head) and the q/k/v projections, and then averages it
away. Only the token SUM is needed, which removes most of that work:

  * the q/k/v projections are linear, so  Σ_i dz_i = (Σ_i dq_i) W_q + (Σ_i dk_i) W_k + (Σ_i dv_i) W_v;
  * the rows of the softmax gradient dS sum to zero, so Σ_{i≥1} dk_i = -dk_0 (one column of dS);
  * Σ_{i≥1} dv_i = Σ_r (1 - P_r0) dO_r, because the attention rows sum to one;
  * Σ_{i≥1} dq_i = s Σ_j (v_j · M_j) k_j - s Σ_{i≥1} (dO_i · O_i) (P k)_i  with  M = P[1:]ᵀ dO[1:].

What remains per query is one dense matmul through the MLP's c_fc and one through the attention's
output projection (large batched matmuls over all queries), and one T x T product per head (M): the
gradient reaching the block output is the same vector for every patch token up to ln_post's
per-token normalisation, so its product with c_proj needs one per-image matmul only. The forward of
the block does not depend on the queries, so it runs once per image and serves every step.

Exact in real arithmetic; in float32 it agrees with autograd to rounding (tests/test_last_block.py).
Written for open_clip's standard block (no layer scale, MLP c_fc -> elementwise activation -> c_proj);
`supports()` says whether a model qualifies, the caller keeps autograd otherwise (and for float16).
Notation: T = 1 + N tokens (CLS first), C width, H heads of d = C / H channels, D embedding, K queries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from car.clip.surgery import project


@dataclass
class LastBlockState:
    """The last block's forward on one image, everything the backward reads (one image, no batch)."""

    z: torch.Tensor  # [T, C] ln_1 of the block input (gradCAM's activation)
    q: torch.Tensor  # [H, T, d]
    k: torch.Tensor  # [H, T, d]
    v: torch.Tensor  # [H, T, d]
    probs: torch.Tensor  # [H, T, T] attention weights (rows attend)
    out: torch.Tensor  # [H, T, d] P v, before the output projection
    keys_mean: torch.Tensor  # [H, T, d] P k
    xhat_2: torch.Tensor  # [T, C] ln_2's normalised input
    rstd_2: torch.Tensor  # [T, 1]
    xhat_post: torch.Tensor  # [T, C] ln_post's normalised input
    rstd_post: torch.Tensor  # [T, 1], 0 at the CLS token (it is not pooled)
    hidden_scale: torch.Tensor  # [T, 4C] act'(hidden) · rstd_post
    hidden_shift: torch.Tensor  # [T, 4C] act'(hidden) · (x̂_post W_proj), W_proj = c_proj.weight [C, 4C]
    pooled: torch.Tensor  # [D] u, the patch-mean of the projected tokens (not normalised)
    attn_mean: torch.Tensor  # [T, T] head-averaged attention (the last block's affinity map)


def supports(visual, dtype: torch.dtype) -> bool:
    """True when the last block is open_clip's standard one, the weights float32 and autocast off
    (the bf16/fp16 autocast modes keep autograd, which runs the block under autocast as before)."""
    block = visual.transformer.resblocks[-1]
    mlp = getattr(block, "mlp", None)
    device = block.attn.in_proj_weight.device.type if hasattr(block.attn, "in_proj_weight") else "cpu"
    return (dtype == torch.float32 and not torch.is_autocast_enabled(device)
            and isinstance(block.ls_1, torch.nn.Identity) and isinstance(block.ls_2, torch.nn.Identity)
            and getattr(block.attn, "in_proj_weight", None) is not None and hasattr(block.attn, "num_heads")
            and mlp is not None and hasattr(mlp, "c_fc") and hasattr(mlp, "c_proj") and hasattr(mlp, "gelu")
            and isinstance(getattr(block, "ln_2", None), torch.nn.LayerNorm)
            and isinstance(getattr(visual, "ln_post", None), torch.nn.LayerNorm))


def _normalised(ln: torch.nn.LayerNorm, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What a LayerNorm's backward needs of its input x [T, C]: (x̂, 1/σ), x̂ [T, C], 1/σ [T, 1]."""
    mean = x.mean(dim=-1, keepdim=True)
    rstd = torch.rsqrt(x.var(dim=-1, unbiased=False, keepdim=True) + ln.eps)
    return (x - mean) * rstd, rstd


def _layer_norm_backward(grad: torch.Tensor, xhat: torch.Tensor, rstd: torch.Tensor,
                         gamma: torch.Tensor) -> torch.Tensor:
    """d input of a LayerNorm from d output. grad [..., T, C]; xhat [T, C]; rstd [T, 1] -> [..., T, C]."""
    g = grad * gamma
    return rstd * (g - g.mean(dim=-1, keepdim=True) - xhat * (g * xhat).mean(dim=-1, keepdim=True))


def _activation_and_derivative(act: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """act(x) and act'(x), elementwise: closed forms for open_clip's QuickGELU and exact GELU, autograd
    for any other elementwise activation."""
    if type(act).__name__ == "QuickGELU":  # x·σ(1.702x)
        gate = torch.sigmoid(1.702 * x)
        return x * gate, gate * (1 + 1.702 * x * (1 - gate))
    if isinstance(act, torch.nn.GELU) and act.approximate == "none":  # x·Φ(x)
        cdf = 0.5 * (1 + torch.erf(x * math.sqrt(0.5)))
        return F.gelu(x), cdf + x * torch.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    with torch.enable_grad():
        leaf = x.detach().requires_grad_(True)
        out = act(leaf)
        (grad,) = torch.autograd.grad(out, leaf, torch.ones_like(out))
    return out.detach(), grad


@torch.no_grad()
def forward_state(visual, x: torch.Tensor) -> LastBlockState:
    """The last block, ln_post, projection and patch-mean pooling on x [1, T, C] (one image).

    The block output, the pooled embedding and the attention map are made with the same operations
    as surgery.block_forward's gradCAM path (fused attention for the output, the explicit softmax
    beside it), so they are bit-identical to what the autograd path feeds gradCAM; the per-head
    weights and P v kept for the backward come from the explicit softmax."""
    block = visual.transformer.resblocks[-1]
    mha, mlp = block.attn, block.mlp
    _, t, c = x.shape
    heads = mha.num_heads
    z = block.ln_1(x)  # [1, T, C]
    q, k, v = F.linear(z, mha.in_proj_weight, mha.in_proj_bias).chunk(3, dim=-1)
    q, k, v = (y.reshape(1, t, heads, c // heads).transpose(1, 2) for y in (q, k, v))  # [1, H, T, d]
    fused = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(1, t, c)
    probs = torch.softmax((q @ k.transpose(-2, -1)) / math.sqrt(c // heads), dim=-1)[0]  # [H, T, T]
    q, k, v = q[0], k[0], v[0]  # [H, T, d]
    x1 = x + mha.out_proj(fused)  # [1, T, C]
    normed_2 = block.ln_2(x1)
    hidden = mlp.c_fc(normed_2)  # [1, T, 4C]
    activated, act_grad = _activation_and_derivative(mlp.gelu, hidden)
    y = x1 + mlp.c_proj(activated)  # [1, T, C] block output
    xhat_2, rstd_2 = _normalised(block.ln_2, x1[0])
    xhat_post, rstd_post = _normalised(visual.ln_post, y[0])
    rstd_post[0] = 0  # the CLS token is not pooled: no gradient reaches it from u
    act_grad = act_grad[0]  # [T, 4C]
    return LastBlockState(z=z[0], q=q, k=k, v=v, probs=probs, out=probs @ v, keys_mean=probs @ k,
                          xhat_2=xhat_2, rstd_2=rstd_2, xhat_post=xhat_post, rstd_post=rstd_post,
                          hidden_scale=act_grad * rstd_post, hidden_shift=act_grad * (xhat_post @ mlp.c_proj.weight),
                          pooled=project(visual, y[:, 1:]).mean(dim=1)[0], attn_mean=probs.mean(dim=0))


QUERIES_PER_PASS = 8  # cotangents per pass: [8, T, 4C] intermediates run a third faster than [20, T, 4C] on CPU


@torch.no_grad()
def patch_mean_grad(visual, state: LastBlockState, grad_pooled: torch.Tensor) -> torch.Tensor:
    """mean_{i≥1} d(g_k · u)/d z_i for each cotangent g_k: grad_pooled [K, D] -> [K, C]."""
    return torch.cat([_patch_mean_grad(visual, state, g) for g in grad_pooled.split(QUERIES_PER_PASS)])


def _patch_mean_grad(visual, state: LastBlockState, grad_pooled: torch.Tensor) -> torch.Tensor:
    block = visual.transformer.resblocks[-1]
    mha, mlp = block.attn, block.mlp
    t, c = state.z.shape
    heads, n = state.q.shape[0], t - 1
    d, kq = c // heads, grad_pooled.shape[0]
    scale = 1.0 / math.sqrt(d)

    # ln_post and the projection: every patch token i gets the same cotangent g_k = γ ⊙ proj g_k / N, so
    # dy_i = r_i (g_k - mean(g_k) - x̂_i s_ik) with s_ik = mean_c(g_k ⊙ x̂_i) (LayerNorm's backward)
    w = grad_pooled @ visual.proj.T if visual.proj is not None else grad_pooled  # [K, C]
    g = w / n * visual.ln_post.weight  # [K, C]
    centred = g - g.mean(dim=-1, keepdim=True)  # [K, C]
    shift = (state.xhat_post @ g.T).T[:, :, None] * (state.rstd_post / c)  # [K, T, 1] r_i s_ik
    d_y = state.rstd_post * centred[:, None, :] - shift * state.xhat_post  # [K, T, C] (CLS row 0)

    # MLP on every token: x1 -> ln_2 -> c_fc -> act -> c_proj, plus the residual. Through c_proj by
    # the same structure: dy_i W = r_i (centred_k W) - r_i s_ik (x̂_i W), the last product made once
    # per image (hidden_shift), so only the matmul through c_fc is dense per query
    d_hidden = state.hidden_scale * (centred @ mlp.c_proj.weight)[:, None, :]  # [K, T, 4C]
    d_hidden.addcmul_(shift, state.hidden_shift, value=-1.0)
    d_x1 = d_y + _layer_norm_backward(d_hidden @ mlp.c_fc.weight, state.xhat_2, state.rstd_2, block.ln_2.weight)
    d_out = (d_x1 @ mha.out_proj.weight).reshape(kq, t, heads, d).transpose(1, 2)  # [K, H, T, d]

    # token sums of dq, dk, dv over the patch tokens (see the module docstring)
    p_cls = state.probs[:, :, 0]  # [H, T] attention paid to the CLS token
    sum_dv = torch.einsum("ht,khtd->khd", 1 - p_cls, d_out)
    alpha = (d_out * (state.v[:, :1] - state.out)).sum(dim=-1)  # [K, H, T] = dP_r0 - δ_r
    sum_dk = -scale * torch.einsum("ht,kht,htd->khd", p_cls, alpha, state.q)
    patch_out = d_out[:, :, 1:].permute(1, 2, 0, 3).reshape(heads, n, kq * d)  # [H, N, K*d]
    m = (state.probs[:, 1:].transpose(1, 2) @ patch_out).reshape(heads, t, kq, d)  # [H, T, K, d]
    beta = torch.einsum("htd,htkd->htk", state.v, m)  # [H, T, K] v_j · M_j
    delta = (d_out[:, :, 1:] * state.out[:, 1:]).sum(dim=-1)  # [K, H, N] δ_i = dO_i · O_i
    sum_dq = scale * (torch.einsum("htk,htd->khd", beta, state.k)
                      - torch.einsum("khi,hid->khd", delta, state.keys_mean[:, 1:]))

    w_q, w_k, w_v = mha.in_proj_weight.chunk(3, dim=0)  # [C, C] each
    total = sum_dq.reshape(kq, c) @ w_q + sum_dk.reshape(kq, c) @ w_k + sum_dv.reshape(kq, c) @ w_v
    return total / n  # [K, C]
