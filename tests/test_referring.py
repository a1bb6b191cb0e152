"""Referring mode: metrics by hand, the final-mask vote, and the official quirks Q19/Q35."""

import numpy as np
import pytest
import torch

from car.methods.car.prompts import VisualPrompt
from car.methods.car.recurrence import CaR, CarResult
from car.methods.car.segmenter import ReferringCaR, merge_expression_masks
from car.metrics import ReferringIoU


def mask(rows, cols, shape=(4, 4)):
    m = torch.zeros(shape, dtype=torch.int64)
    m[rows, cols] = 1
    return m


def test_referring_metrics_by_hand():
    metric = ReferringIoU(weighting="sentence")
    # unit 1: pred 4 px, gt 4 px, overlap 2 -> IoU 2/6; weight 2 (two sentences)
    metric.update(mask(slice(0, 2), slice(0, 2)), mask(slice(0, 2), slice(1, 3)), sentences=2)
    # unit 2: perfect, 8 px -> IoU 1; weight 1
    metric.update(mask(slice(0, 2), slice(0, 4)), mask(slice(0, 2), slice(0, 4)), sentences=1)
    # unit 3: empty prediction and empty GT -> IoU 0 (empty union), weight 1
    metric.update(torch.zeros(4, 4, dtype=torch.int64), torch.zeros(4, 4, dtype=torch.int64), sentences=1)
    out = metric.compute()
    assert out["miou"] == pytest.approx(100 * (2 * 2 / 6 + 1 + 0) / 4)
    # oIoU = Σ w·I / Σ w·U = (2·2 + 8) / (2·6 + 8) = 12 / 20
    assert out["oiou"] == pytest.approx(60.0)
    assert out["precision@0.5"] == pytest.approx(25.0) and out["precision@0.9"] == pytest.approx(25.0)
    assert out["num_units"] == 3 and out["num_sentences"] == 4 and out["weighting"] == "sentence"


def _two_objects(weighting: str) -> dict:
    """Object A: 3 sentences, pred 4 px vs gt 4 px overlapping 2 (IoU 1/3, I 2, U 6).
    Object B: 1 sentence, pred 2 px inside gt 4 px (IoU 1/2, I 2, U 4)."""
    metric = ReferringIoU(weighting=weighting)
    metric.update(mask(slice(0, 2), slice(0, 2)), mask(slice(0, 2), slice(1, 3)), sentences=3)
    metric.update(mask(slice(3, 4), slice(0, 2)), mask(slice(3, 4), slice(0, 4)), sentences=1)
    return metric.compute()


def test_unit_and_sentence_weighting_differ_by_hand():
    per_object = _two_objects("unit")  # official CaR: every object once
    assert per_object["miou"] == pytest.approx(100 * (1 / 3 + 1 / 2) / 2)  # 41.667
    assert per_object["oiou"] == pytest.approx(100 * (2 + 2) / (6 + 4))  # 40.0
    assert per_object["precision@0.5"] == pytest.approx(50.0)  # B only, 1 of 2 objects
    per_sentence = _two_objects("sentence")  # A counts 3 times
    assert per_sentence["miou"] == pytest.approx(100 * (3 * 1 / 3 + 1 / 2) / 4)  # 37.5
    assert per_sentence["oiou"] == pytest.approx(100 * (3 * 2 + 2) / (3 * 6 + 4))  # 36.364
    assert per_sentence["precision@0.5"] == pytest.approx(25.0)  # B only, 1 of 4 sentences
    for out in (per_object, per_sentence):
        assert out["num_units"] == 2 and out["num_sentences"] == 4
    assert ReferringIoU().weighting == "unit"  # the default is the official rule
    with pytest.raises(ValueError, match="weighting"):
        ReferringIoU(weighting="expression")


def test_referring_metric_ignores_non_binary_target_pixels():
    metric = ReferringIoU()
    target = mask(slice(0, 1), slice(0, 4))
    target[3, :] = 255
    metric.update(torch.ones(4, 4, dtype=torch.int64), target)
    assert metric.compute()["miou"] == pytest.approx(100 * 4 / 12)


def test_merge_vote_and_small_area_fallback():
    a = np.zeros((10, 10), bool)
    a[:5] = True  # 50 %
    b = np.zeros((10, 10), bool)
    b[:, :5] = True
    out = merge_expression_masks([a, b], np.array([0.75, 0.25]), 0.5, 0.05, (10, 10))
    np.testing.assert_array_equal(out, a)  # a outweighs b
    tiny = np.zeros((10, 10), bool)
    tiny[0, 0] = True
    c = np.zeros((10, 10), bool)
    c[9, 9] = True
    # vote covers 1 % <= 5 % -> union of the surviving masks
    out = merge_expression_masks([tiny, c], np.array([0.6, 0.4]), 0.5, 0.05, (10, 10))
    assert out.sum() == 2


class FixedCaR:
    def __init__(self, maps, scores):
        self.maps, self.scores, self.queries = maps, scores, None

    def __call__(self, image, queries):
        self.queries = queries
        return CarResult(maps=self.maps, live=list(range(len(self.maps))), scores=self.scores, history=[[0], [0]])


def test_referring_car_cleans_sentences_and_q19_shift():
    maps = np.zeros((3, 10, 10), np.float32)
    maps[1, :, :6] = 0.9  # expression 0 proposes nothing, expression 1 the left 60 %,
    maps[2, :6, :] = 0.9  # expression 2 the top 60 %
    car = FixedCaR(maps, np.array([0.6, 0.3, 0.1], np.float32))
    sample = {"image": np.zeros((10, 10, 3), np.uint8), "sentences": ['The "LEFT" guy w/ hat', "man", "top"]}
    fixed, _ = ReferringCaR(car, crf=None, crf_onehot_fixed=True)(sample)
    assert car.queries == ["the left guy w hat", "man", "top"]
    # correct: vote = (0.3·m1 + 0.1·m2) / 1.0 <= 0.4 everywhere -> empty -> union m1 | m2
    assert fixed.sum() == 60 + 60 - 36
    shifted, _ = ReferringCaR(car, crf=None, crf_onehot_fixed=False)(sample)
    # official Q19: the empty mask is dropped, m1 takes score 0.6 and m2 0.3 -> vote keeps m1 only
    assert shifted.sum() == 60 and shifted[:, :6].all()


class CharTable:
    def __init__(self):
        self.tables = []

    def __call__(self, images, queries):
        return torch.tensor([0.9, 0.9, 0.1][: len(images)])

    def score(self, images, table):
        self.tables.append(table)
        return torch.full((len(images),), 0.9)


class Maps:
    def encode(self, image):
        return None

    def __call__(self, enc, queries, background, compete=True):
        assert compete is False
        return np.ones((len(queries), 4, 4), np.float32)


def test_q35_official_character_table():
    clf = CharTable()
    car = CaR(Maps(), clf, VisualPrompt([], 0.5), lambda texts: list(texts), theta=0.5, background_words=[],
              compete=False, char_filter_bug=True)
    result = car(np.zeros((4, 4, 3), np.uint8), ["dog", "cat", "man"])
    assert result.live == [0, 1]
    # step 2: for each ORIGINAL expression t, characters of "a clean origami {t}." at live indices 0, 1
    assert clf.tables[0] == [["a", " "], ["a", " "], ["a", " "]]


def test_semantic_passes_paint_later_pass_on_top_and_oracle_queries():
    from car.methods.car.segmenter import QueryPass, SemanticCaR

    class PassCaR:
        def __init__(self):
            self.calls = []

        def __call__(self, image, queries, background_words=None, prompt_types=None):
            self.calls.append((list(queries), background_words, prompt_types))
            maps = np.zeros((len(queries), 4, 4), np.float32)
            maps[:, :, :] = 0.9 if queries[0] == "sky" else 0.0
            if queries[0] == "person":
                maps[0, 2:, :] = 0.95
            return CarResult(maps=maps, live=list(range(len(queries))), scores=np.ones(len(queries)), history=[[0]])

    car = PassCaR()
    seg = SemanticCaR(car, [QueryPass(["sky"], [47], ["person"], ["blur", "gray"]),
                            QueryPass(["person", "dog"], [37, 23], None, ["blur", "circle"])], crf=None)
    sample = {"image": np.zeros((4, 4, 3), np.uint8), "target": np.full((4, 4), 47)}
    labels, info = seg(sample)
    assert (labels[:2] == 47).all() and (labels[2:] == 37).all()  # things painted over stuff
    assert car.calls[0] == (["sky"], ["person"], ["blur", "gray"])
    assert info["kept"] == [[47], [37, 23]]
    seg.oracle_queries = True
    car.calls.clear()
    seg(sample)
    assert [c[0] for c in car.calls] == [["sky"]]  # only ground-truth classes are queried
