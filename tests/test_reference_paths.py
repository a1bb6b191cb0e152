"""The batched production path equals the per-query reference path (masks and scores)."""

import numpy as np
import torch

from benchmarks.reference import ReferenceMaskClassifier, ReferenceProposalGenerator
from car.clip.text import TextEncoder
from car.methods.car.classifier import MaskClassifier
from car.methods.car.prompts import VisualPrompt
from car.methods.car.proposals import ProposalGenerator
from car.methods.car.recurrence import CaR

TEMPLATES = ["a photo of a {}.", "a clean origami {}.", "There is a {} in the scene"]
QUERIES = ["bicycle", "person with clothes,people,human", "dog", "car", "sky"]
# Tolerance: both paths do the same float32 arithmetic in a different batching, so maps agree to
# 1e-5 absolute and scores to 1e-5; the pruning decisions and final label sets must be identical.
ATOL = 1e-5


def build(clip, reference: bool):
    gen_cls = ReferenceProposalGenerator if reference else ProposalGenerator
    clf_cls = ReferenceMaskClassifier if reference else MaskClassifier
    return CaR(gen_cls(clip, lam=0.4), clf_cls(clip, TEMPLATES), VisualPrompt(["circle", "blur"], 0.4),
               TextEncoder(clip), theta=0.2, background_words=["sky", "road"])


def test_fast_and_reference_paths_agree(micro_clip, voc_image):
    image = voc_image[::2, ::2].copy()  # keep the test quick
    fast = build(micro_clip, reference=False)(image, QUERIES)
    ref = build(micro_clip, reference=True)(image, QUERIES)
    assert fast.history == ref.history and fast.live == ref.live
    np.testing.assert_allclose(fast.maps, ref.maps, atol=ATOL)
    np.testing.assert_allclose(fast.scores, ref.scores, atol=ATOL)


def test_reference_classifier_equals_batched(micro_clip):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (50, 70, 3), dtype=np.uint8) for _ in range(3)]
    fast = MaskClassifier(micro_clip, TEMPLATES)(images, QUERIES[:3])
    ref = ReferenceMaskClassifier(micro_clip, TEMPLATES)(images, QUERIES[:3])
    torch.testing.assert_close(fast, ref, atol=ATOL, rtol=0)
