"""Proposal generator: batched gradCAM equals the per-query computation; refinement details."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from car.clip.surgery import block_forward, project
from car.clip.text import TextEncoder
from car.methods.car.proposals import ProposalGenerator, affinity, box_mask
from car.methods.car.text import origami


def reference_cam(gen, enc, texts, k):
    """One query at a time, written out directly from CAR_SPEC §3.3."""
    visual, last = gen.clip.visual, gen.clip.visual.transformer.resblocks[-1]
    with torch.enable_grad():
        z = last.ln_1(enc.x).detach().requires_grad_(True)  # [1, 1+N, C]
        y, _ = block_forward(last, enc.x, z=z)
        v = F.normalize(project(visual, y[0, 1:]).mean(0), dim=-1)
        p = (gen.clip.logit_scale * texts @ v).softmax(-1)[k]
        p.backward()
    g, zp = z.grad[0, 1:], z.detach()[0, 1:]
    c = torch.relu((g.mean(0) * zp).sum(-1))
    c = (c - c.min()) / (c.max() - c.min() + 1e-15)
    return c.reshape(enc.grid)


@pytest.mark.parametrize("fixture", ["micro_clip", "vitb16_clip"])
def test_batched_gradcam_equals_per_query(fixture, request):
    clip = request.getfixturevalue(fixture)
    gen = ProposalGenerator(clip, lam=0.4, chunk_size=2)  # chunking must not change anything
    torch.manual_seed(1)
    image = (torch.rand(40, 72, 3) * 255).numpy().astype(np.uint8)
    enc = gen.encode(image)
    assert enc.grid == (3, 5) and enc.size == (40, 72)  # 48x80 after rounding up to 16
    texts = F.normalize(torch.randn(6, clip.model.text_projection.shape[1]), dim=-1)
    k = 3
    cams, _ = gen.gradcam(enc, texts.expand(k, -1, -1), torch.arange(k))
    for i in range(k):
        torch.testing.assert_close(cams[i], reference_cam(gen, enc, texts, i), rtol=1e-4, atol=1e-5)


def test_maps_shape_and_range_on_real_image(micro_clip, voc_image):
    gen = ProposalGenerator(micro_clip, lam=0.4)
    text = TextEncoder(micro_clip)
    enc = gen.encode(voc_image)
    maps = gen(enc, text(["bicycle", "person", "dog"]), text([origami(w) for w in ["sky", "road"]]))
    assert maps.shape == (3,) + voc_image.shape[:2] and maps.dtype == np.float32
    assert maps.min() >= 0 and maps.max() <= 1 + 1e-6
    # referring mode (no competition between queries) gives different maps
    solo = gen(enc, text(["bicycle", "person", "dog"]), text(["a clean origami sky."]), compete=False)
    assert solo.shape == maps.shape


def test_zero_cam_falls_back_to_queries_only(micro_clip, monkeypatch):
    gen = ProposalGenerator(micro_clip, lam=0.4)
    enc = gen.encode(np.full((32, 32, 3), 128, np.uint8))
    calls = []
    original = gen.gradcam

    def fake(enc_, texts, target):
        calls.append(texts.shape)
        cam, attn = original(enc_, texts, target)
        return (torch.zeros_like(cam) if len(calls) == 1 else cam), attn

    monkeypatch.setattr(gen, "gradcam", fake)
    q = F.normalize(torch.randn(2, 64), dim=-1)
    bg = F.normalize(torch.randn(4, 64), dim=-1)
    gen(enc, q, bg)
    assert calls[0] == (2, 6, 64)  # queries + background words
    assert calls[1] == (2, 2, 64)  # Q7: recomputed without background words


def test_box_mask_official_clamp_excludes_last_row_and_column():
    cam = np.zeros((4, 5), np.float32)
    cam[1:, 2:] = 1.0  # a block touching the bottom-right corner
    official = box_mask(cam, 0.4, "official")
    correct = box_mask(cam, 0.4, "correct")
    assert correct[1:, 2:].all() and correct.sum() == 9
    assert official[1:3, 2:4].all() and official.sum() == 4  # Q8: last row/col never inside


def test_box_mask_lowers_lambda_until_something_passes():
    cam = np.zeros((5, 5), np.float32)
    cam[2, 2], cam[0, 0] = 1.0, 0.95
    # λ = 1: t = max(u) so nothing is strictly above; λ drops by 0.1 to 0.9: t = floor(0.9·255) = 229,
    # so both peaks (255 and 242) pass and their boxes are kept.
    mask = box_mask(cam, 1.0, "correct")
    assert mask[2, 2] and mask[0, 0] and mask.sum() == 2
    assert not box_mask(np.zeros((3, 3), np.float32), 0.4, "correct").any()  # empty CAM -> empty box


def test_box_mask_uses_nested_contours():
    cam = np.zeros((9, 9), np.float32)
    cam[1:8, 1:8] = 1.0
    cam[3:6, 3:6] = 0.0  # a hole: the tree retrieval also finds the inner contour
    assert box_mask(cam, 0.5, "correct")[1:8, 1:8].all()


def test_affinity_is_symmetric_and_balanced():
    torch.manual_seed(0)
    maps = [torch.rand(6, 6).softmax(-1) for _ in range(3)]
    s = affinity(maps)
    torch.testing.assert_close(s, s.T)
    # before the squaring, Sinkhorn + symmetrisation gives a doubly-stochastic-like matrix
    assert torch.all(s >= 0) and s.sum(1).sub(1).abs().max() < 0.05
