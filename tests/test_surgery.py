"""The explicit visual-tower forward equals open_clip's own, and positional interpolation."""

import pytest
import torch
import torch.nn.functional as F

from car.clip.surgery import embed_tokens, encode_cls, interpolate_pos_embed, run_blocks


def test_pos_embed_identity_on_same_grid():
    pos = torch.randn(1 + 14 * 14, 8)
    torch.testing.assert_close(interpolate_pos_embed(pos, 14, 14), pos)


def test_pos_embed_interpolates_to_rectangular_grid():
    pos = torch.randn(1 + 4 * 4, 8)
    out = interpolate_pos_embed(pos, 6, 10)
    assert out.shape == (1 + 60, 8)
    torch.testing.assert_close(out[0], pos[0])  # CLS entry untouched
    const = torch.cat([torch.zeros(1, 8), torch.ones(16, 8)])  # a constant grid stays constant
    torch.testing.assert_close(interpolate_pos_embed(const, 5, 7)[1:], torch.ones(35, 8))


def test_fp16_round_matches_half_precision():
    pos = torch.randn(1 + 16, 4) * 3
    rounded = interpolate_pos_embed(pos, 4, 4, fp16_round=True)
    torch.testing.assert_close(rounded, pos.half().float(), rtol=0, atol=0)


def _check_matches_open_clip(clip):
    s = clip.image_size
    images = torch.randn(2, 3, s, s)
    ours = encode_cls(clip.visual, images, skip_last_block=False)
    theirs = F.normalize(clip.model.encode_image(images), dim=-1)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
    skipped = encode_cls(clip.visual, images, skip_last_block=True)
    assert not torch.allclose(skipped, ours)  # Q1: the last block really is skipped


def test_block_reimplementation_matches_open_clip_micro(micro_clip):
    _check_matches_open_clip(micro_clip)


def test_block_reimplementation_matches_open_clip_vitb16(vitb16_clip):
    _check_matches_open_clip(vitb16_clip)


def test_attention_maps_are_row_stochastic(micro_clip):
    x, h, w = embed_tokens(micro_clip.visual, torch.randn(1, 3, 48, 80))
    assert (h, w) == (3, 5) and x.shape == (1, 16, 64)
    _, maps = run_blocks(micro_clip.visual, x, range(2), need_weights=True)
    assert len(maps) == 2 and maps[0].shape == (1, 16, 16)
    torch.testing.assert_close(maps[1].sum(-1), torch.ones(1, 16))


def test_cls_block_equals_the_full_block_at_the_cls_token(micro_clip):
    """The classifier's last block is run for the CLS token only; it equals the full block there."""
    from car.clip.surgery import block_forward, cls_block_forward

    block = micro_clip.visual.transformer.resblocks[-1]
    x = torch.randn(3, 1 + 16, micro_clip.visual.transformer.width)
    full, _ = block_forward(block, x)
    torch.testing.assert_close(cls_block_forward(block, x), full[:, :1], rtol=1e-5, atol=1e-5)


def test_gradcam_attention_without_weight_grads_matches_the_explicit_softmax(micro_clip):
    """weights_without_grad: same output, weights and input gradient as the explicit-softmax path."""
    from car.clip.surgery import block_forward

    block = micro_clip.visual.transformer.resblocks[-1]
    x = torch.randn(1, 1 + 25, micro_clip.visual.transformer.width)
    results = []
    for fused in (False, True):
        z = block.ln_1(x).detach().requires_grad_(True)
        y, weights = block_forward(block, x, need_weights=True, z=z, weights_without_grad=fused)
        (grad,) = torch.autograd.grad(y.square().sum(), z)
        results.append((y.detach(), weights.detach(), grad))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert not results[1][1].requires_grad


@pytest.mark.parametrize("rows", [512, 7])
def test_inference_mlp_in_chunks_matches_open_clip(vitb16_clip, monkeypatch, rows):
    """Without autograd, block_forward runs the MLP in row chunks with QuickGELU in place: the values
    are open_clip's block's (chunk boundaries inside an image, more rows than one chunk)."""
    from car.clip import surgery

    monkeypatch.setattr(surgery, "MLP_ROWS", rows)
    block = vitb16_clip.visual.transformer.resblocks[2]
    assert type(block.mlp.gelu).__name__ == "QuickGELU"
    x = torch.randn(3, 197, vitb16_clip.visual.transformer.width)
    with torch.no_grad():
        ours, _ = surgery.block_forward(block, x)
        theirs = block(x)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    assert not torch.equal(x, ours)  # the input is not overwritten by the in-place residual


def test_inference_mlp_with_another_activation_goes_through_the_modules(micro_clip):
    """GELU blocks (the tiny and micro architectures) take the modules' path: open_clip's values."""
    from car.clip import surgery

    block = micro_clip.visual.transformer.resblocks[0]
    assert type(block.mlp.gelu).__name__ != "QuickGELU"
    x = torch.randn(2, 17, micro_clip.visual.transformer.width)
    with torch.no_grad():
        torch.testing.assert_close(surgery.mlp_inference(block, x), block.mlp(block.ln_2(x)))
