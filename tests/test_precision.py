"""car.precision=fp16_weights, the official CUDA mode (quirk Q32), on the CPU with the micro backbone.

torch has CPU float16 kernels for every op CaR uses (slow, fine for the micro CLIP). Tolerances:
measured on this case (quarter-size VOC image, 6 queries, 2 steps): scores differ from fp32 by at
most 9e-5, proposal maps by at most 3.2e-3 (mean 3e-4); the asserts allow about 10x that.
"""

import numpy as np
import pytest
import torch

from benchmarks.reference import ReferenceMaskClassifier, ReferenceProposalGenerator
from car.clip.load import load_clip
from car.clip.precision import to_fp16_weights
from car.clip.text import TextEncoder
from car.methods.car.classifier import MaskClassifier
from car.methods.car.prompts import VisualPrompt
from car.methods.car.proposals import ProposalGenerator
from car.methods.car.recurrence import CaR

QUERIES = ["bicycle", "person", "dog", "car", "sky", "cat"]


def fresh_micro():
    """A micro CLIP of our own (the session fixture must stay float32 for the other tests)."""
    torch.manual_seed(0)
    return load_clip({"arch": "car-micro-vit", "pretrained": None})


def build(clip, precision, reference=False):
    gen = (ReferenceProposalGenerator if reference else ProposalGenerator)(clip, 0.4)
    clf = (ReferenceMaskClassifier if reference else MaskClassifier)(clip, ["a photo of a {}.", "a clean origami {}."])
    return CaR(gen, clf, VisualPrompt(["circle", "blur"], 0.4), TextEncoder(clip), theta=0.15,
               background_words=["sky", "road"], precision=precision)


@pytest.fixture(scope="module")
def runs(voc_image):
    image = voc_image[::4, ::4].copy()
    full = build(fresh_micro(), "fp32")(image, QUERIES)
    clip = fresh_micro()
    car = build(clip, "fp16_weights")
    return full, car(image, QUERIES), clip, car, image


def test_fp16_weights_really_casts_both_towers(runs):
    _, _, clip, _, _ = runs
    params = dict(clip.model.named_parameters())
    floats = {k: p.dtype for k, p in params.items() if p.is_floating_point()}
    assert floats["logit_scale"] == torch.float32  # as OpenAI's conversion leaves it
    assert {d for k, d in floats.items() if k != "logit_scale"} == {torch.float16}
    assert any(k.startswith("visual.") for k in floats) and any(k.startswith("transformer.") for k in floats)
    assert clip.dtype == torch.float16


def test_fp16_weights_runs_the_towers_in_half(runs):
    _, _, clip, car, image = runs
    enc = car.proposals.encode(image)
    assert enc.x.dtype == torch.float16 and enc.trunk_attn[0].dtype == torch.float16
    texts = car.text(["cat", "dog"])
    assert texts.dtype == torch.float32  # normalised after the tower, in float32
    cams, attn = car.proposals.cams(enc, texts, car.text(["sky"]), torch.arange(2), compete=True)
    assert cams.dtype == torch.float32 and attn.dtype == torch.float16  # gradCAM backward ran in half
    assert car.classifier.encode_images([image]).dtype == torch.float32


def test_fp16_weights_scores_stay_close_to_fp32(runs):
    full, half, _, _, _ = runs
    assert half.history == full.history and half.live == full.live
    for a, b in zip(full.trace, half.trace):
        np.testing.assert_allclose(b.scores, a.scores, atol=1e-3)
    assert half.maps.dtype == np.float32 and half.maps.shape == full.maps.shape
    diff = np.abs(half.maps - full.maps)
    assert diff.max() < 0.05 and diff.mean() < 5e-3


def test_fp16_weights_reference_path_agrees(runs):
    """The per-query reference path runs in the same mode and gives the same result."""
    _, half, clip, _, image = runs
    ref = build(clip, "fp16_weights", reference=True)(image, QUERIES)
    assert ref.history == half.history
    np.testing.assert_allclose(ref.scores, half.scores, atol=2e-3)


def test_a_precision_mismatch_is_one_sentence(runs):
    _, _, clip, _, _ = runs  # float16 now
    with pytest.raises(ValueError, match="needs float32 CLIP weights"):
        build(clip, "fp32")
    other = build(fresh_micro(), "fp32")
    to_fp16_weights(other.proposals.clip)  # shared CLIPs cast by another CaR after this one was built
    with pytest.raises(ValueError, match="fp16_weights casts them in place"):
        other(np.zeros((32, 32, 3), np.uint8), ["cat"])


def test_the_settings_table_accepts_fp16_weights():
    from car.config import compose
    from car.settings import validate

    cfg = validate(compose(["car.precision=fp16_weights"]))
    assert cfg.car.precision == "fp16_weights"
