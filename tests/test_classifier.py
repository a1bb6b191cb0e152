"""Mask classifier: preprocessing, double softmax, scores (CAR_SPEC §5)."""

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from car.methods.car.classifier import MaskClassifier, classifier_preprocess, double_softmax_scores


def test_preprocess_matches_open_clip_eval_transform(vitb16_clip, voc_image):
    ours = classifier_preprocess(voc_image, vitb16_clip)
    theirs = open_clip.image_transform(224, is_train=False)(Image.fromarray(voc_image))
    assert ours.shape == (3, 224, 224)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


def test_double_softmax_by_hand():
    image = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # K = 2
    text = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.6, 0.8], [0.8, 0.6]]])  # T = 2, J = 2
    q = double_softmax_scores(image, text, logit_scale=10.0)
    # image 0: template 0 logits (10, 0), template 1 logits (6, 8)
    p0 = torch.tensor([10.0, 0.0]).softmax(0) + torch.tensor([6.0, 8.0]).softmax(0)
    torch.testing.assert_close(q[0], p0.softmax(0))
    single = double_softmax_scores(image, text[:1], logit_scale=10.0)  # T = 1: one softmax
    torch.testing.assert_close(single[0], torch.tensor([10.0, 0.0]).softmax(0))


def test_single_query_scores_one(micro_clip):
    clf = MaskClassifier(micro_clip, ["a photo of a {}."])
    img = np.zeros((50, 70, 3), np.uint8)
    assert clf([img], ["cat"]).item() == pytest.approx(1.0)


def test_one_competing_query_scores_exactly_one_without_encoding_the_image(micro_clip, monkeypatch):
    """J = 1: each softmax is over one text, so the double softmax is 1.0 exactly for any embedding
    (checked on random ones, 15 templates); the classifier then skips the image encoder."""
    torch.manual_seed(0)
    for templates in (1, 15):
        computed = double_softmax_scores(torch.randn(1, 64), torch.randn(templates, 1, 64), logit_scale=100.0)
        assert computed.item() == 1.0
    clf = MaskClassifier(micro_clip, ["a photo of a {}.", "a clean origami {}."])
    monkeypatch.setattr(clf, "encode_images", lambda images: pytest.fail("image encoded for J = 1"))
    assert clf([np.zeros((50, 70, 3), np.uint8)], ["cat"]).tolist() == [1.0]
    with pytest.raises(pytest.fail.Exception):  # two competing queries: the images are encoded
        clf([np.zeros((50, 70, 3), np.uint8)] * 2, ["cat", "dog"])


def test_scores_shape_range_and_text_cache(micro_clip):
    clf = MaskClassifier(micro_clip, ["a photo of a {}.", "a clean origami {}."], batch_size=2)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (40, 90, 3), dtype=np.uint8) for _ in range(3)]
    scores = clf(images, ["cat", "dog", "bus"])
    assert scores.shape == (3,) and torch.all((scores > 0) & (scores <= 1))
    assert len(clf.text._cache) == 6
    clf(images[:2], ["cat", "dog"])
    assert len(clf.text._cache) == 6  # nothing re-embedded
    # encoding in batches of 2 or at once gives the same embeddings
    in_one_batch = MaskClassifier(micro_clip, [], batch_size=8).encode_images(images)
    torch.testing.assert_close(clf.encode_images(images), in_one_batch)


def test_classifier_rounds_its_positional_table_like_the_proposals(micro_clip):
    """Q3: the official code runs the classifier through the same wrapper as the proposal CLIP,
    so its positional table is rounded to fp16 too. On fp32 weights that changes the embedding;
    the flag follows car.quirks.posemb_fp16_round."""
    from car.clip.surgery import encode_cls
    from car.config import compose

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40, 56, 3), dtype=np.uint8) for _ in range(2)]
    rounded = MaskClassifier(micro_clip, [], posemb_fp16_round=True).encode_images(images)
    plain = MaskClassifier(micro_clip, [], posemb_fp16_round=False).encode_images(images)
    assert micro_clip.visual.positional_embedding.dtype == torch.float32
    assert not torch.equal(rounded, plain)
    batch = torch.stack([classifier_preprocess(im, micro_clip) for im in images])
    torch.testing.assert_close(rounded, encode_cls(micro_clip.visual, batch, True, fp16_round=True), rtol=0, atol=0)

    from car.methods.car.build import build_car
    from car.settings import validate

    for flag in (True, False):
        cfg = compose(["backbone=micro_random", f"car.quirks.posemb_fp16_round={str(flag).lower()}"])
        assert build_car(validate(cfg), micro_clip, micro_clip).classifier.posemb_fp16_round is flag
