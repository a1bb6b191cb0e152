"""car/clip/last_block.py: gradCAM's channel weights by hand equal autograd's on real architectures."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from car.clip import last_block
from car.clip.surgery import block_forward, project
from car.methods.car.proposals import ProposalGenerator


@pytest.fixture(scope="module")
def tiny_clip():
    """The embedded tiny architecture (car-tiny-vit: 4 blocks, patch 8, GELU), random weights."""
    from car.clip.load import load_clip

    torch.manual_seed(0)
    return load_clip({"arch": "car-tiny-vit", "pretrained": None})


def autograd_weights(visual, x, grad_pooled):
    """mean over patch tokens of d(g_k · u)/d z by autograd, one cotangent at a time. -> [K, C]."""
    block = visual.transformer.resblocks[-1]
    out = []
    for g in grad_pooled:
        with torch.enable_grad():
            z = block.ln_1(x).detach().requires_grad_(True)
            y, _ = block_forward(block, x, z=z)
            u = project(visual, y[0, 1:]).mean(0)  # [D]
            (grad,) = torch.autograd.grad(u @ g, z)
        out.append(grad[0, 1:].mean(0))
    return torch.stack(out)


@pytest.mark.parametrize("fixture", ["micro_clip", "vitb16_clip", "tiny_clip"])
def test_patch_mean_grad_equals_autograd(fixture, request):
    """QuickGELU (ViT-B/16), GELU (tiny, micro), a rectangular grid, several random cotangents."""
    clip = request.getfixturevalue(fixture)
    visual = clip.visual
    assert last_block.supports(visual, torch.float32)
    torch.manual_seed(3)
    x = torch.randn(1, 1 + 4 * 7, visual.transformer.width)
    g = torch.randn(5, visual.output_dim)
    state = last_block.forward_state(visual, x)
    expected = autograd_weights(visual, x, g)
    torch.testing.assert_close(last_block.patch_mean_grad(visual, state, g), expected, rtol=1e-4, atol=1e-6)
    # the pooled embedding and the attention are the block's own
    y, attn = block_forward(visual.transformer.resblocks[-1], x, need_weights=True)
    torch.testing.assert_close(state.pooled, project(visual, y[0, 1:]).mean(0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(state.attn_mean, attn[0], rtol=1e-5, atol=1e-7)


def test_patch_mean_grad_is_linear_in_the_cotangent(micro_clip):
    """Sanity of the batching: the K rows are independent (a row does not see the others)."""
    visual = micro_clip.visual
    x = torch.randn(1, 1 + 9, visual.transformer.width)
    state = last_block.forward_state(visual, x)
    g = torch.randn(3, visual.output_dim)
    together = last_block.patch_mean_grad(visual, state, g)
    alone = torch.cat([last_block.patch_mean_grad(visual, state, g[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-7)


def test_not_supported_for_float16_autocast_or_layer_scale(micro_clip):
    visual = micro_clip.visual
    assert not last_block.supports(visual, torch.float16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not last_block.supports(visual, torch.float32)
    block = visual.transformer.resblocks[-1]
    saved = block.ls_2
    block.ls_2 = torch.nn.Linear(1, 1)  # anything but Identity
    try:
        assert not last_block.supports(visual, torch.float32)
    finally:
        block.ls_2 = saved


@pytest.mark.parametrize("compete", [True, False])
def test_proposal_maps_same_with_analytic_and_autograd_gradcam(vitb16_clip, compete):
    """The whole proposal step (gradCAM, Q7 retry, refinement) on a VOC-sized input, both paths."""
    gen = ProposalGenerator(vitb16_clip, lam=0.4)
    rng = np.random.default_rng(0)
    enc = gen.encode(rng.integers(0, 256, (120, 200, 3), dtype=np.uint8))
    torch.manual_seed(0)
    queries = F.normalize(torch.randn(5, vitb16_clip.visual.output_dim), dim=-1)
    background = F.normalize(torch.randn(3, vitb16_clip.visual.output_dim), dim=-1)
    idx = torch.arange(5)
    fast_cams, fast_attn = gen.cams(enc, queries, background, idx, compete)
    fast = gen(enc, queries, background, compete=compete)
    assert enc.last_block is not None  # made once, reused by the next step
    gen.analytic = False
    slow_cams, slow_attn = gen.cams(enc, queries, background, idx, compete)
    slow = gen(enc, queries, background, compete=compete)
    torch.testing.assert_close(fast_cams, slow_cams, rtol=0, atol=2e-5)  # results/fidelity.md's Grad-CAM tolerance
    torch.testing.assert_close(fast_attn, slow_attn, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(fast, slow, atol=5e-3)  # refined maps: near-flat on random weights (fidelity.md)


@pytest.mark.parametrize("act", ["quick_gelu", "gelu", "gelu_tanh"])
def test_activation_derivative_closed_forms_equal_autograd(act):
    from open_clip.transformer import QuickGELU

    module = {"quick_gelu": QuickGELU(), "gelu": torch.nn.GELU(), "gelu_tanh": torch.nn.GELU(approximate="tanh")}[act]
    x = torch.linspace(-6, 6, 1001)
    value, slope = last_block._activation_and_derivative(module, x)
    leaf = x.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(module(leaf).sum(), leaf)
    torch.testing.assert_close(value, module(x))
    torch.testing.assert_close(slope, expected, rtol=1e-5, atol=1e-6)
