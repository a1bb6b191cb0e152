"""The recurrence (CAR_SPEC §6) with scripted stages, so every rule is checked exactly."""

import numpy as np
import torch

from car.methods.car.prompts import VisualPrompt
from car.methods.car.recurrence import CaR, prune


class ScriptedProposals:
    """Maps: query j gets a square at column 4j; records the texts it was asked for."""

    def __init__(self, zero_from_step=None):
        self.calls, self.zero_from_step = [], zero_from_step

    def encode(self, image):
        return "enc"

    def __call__(self, enc, queries, background, compete=True):
        self.calls.append(queries)
        maps = np.zeros((len(queries), 8, 40), np.float32)
        if self.zero_from_step and len(self.calls) >= self.zero_from_step:
            return maps
        for j, _ in enumerate(queries):
            maps[j, 2:6, 4 * j : 4 * j + 3] = 1.0
        return maps


class ScriptedText:
    def __call__(self, texts):
        return list(texts)  # the "embedding" is the text itself


class ScriptedClassifier:
    """Scores from a table: score(query) per step; records what competed."""

    def __init__(self, table):
        self.table, self.calls = table, []

    def __call__(self, images, queries):
        step = len(self.calls)
        self.calls.append(list(queries))
        return torch.tensor([self.table[step][q] for q in queries[: len(images)]])


def make(table, theta=0.5, **kw):
    proposals = kw.pop("proposals", ScriptedProposals())
    clf = ScriptedClassifier(table)
    car = CaR(proposals, clf, VisualPrompt([], 0.5), ScriptedText(), theta=theta, background_words=["sky"], **kw)
    return car, proposals, clf


IMAGE = np.zeros((8, 40, 3), np.uint8)


def test_prune_is_strict_and_keeps_argmax_when_empty():
    assert prune(torch.tensor([0.5, 0.51, 0.2]), 0.5) == [1]
    assert prune(torch.tensor([0.1, 0.3, 0.3]), 0.5) == [1]  # first best on ties


def test_prunes_until_nothing_changes():
    table = [
        {"a": 0.7, "b": 0.5, "c": 0.9, "d": 0.1},  # step 1: b (== θ) and d pruned
        {"a": 0.4, "c": 0.8},  # step 2: a pruned
        {"c": 1.0},  # step 3: nothing pruned -> stop
    ]
    car, proposals, clf = make(table)
    result = car(IMAGE, ["a", "b", "c", "d"])
    assert result.history == [[0, 1, 2, 3], [0, 2], [2]]
    assert result.live == [2] and result.steps == 3
    assert result.scores.tolist() == [1.0]
    assert result.maps.shape == (1, 8, 40)
    # step 1 uses raw text, later steps "a clean origami {q}." (Q5)
    assert proposals.calls[0] == ["a", "b", "c", "d"]
    assert proposals.calls[1] == ["a clean origami a.", "a clean origami c."]
    assert clf.calls[1] == ["a", "c"]  # classifier competes among live queries with raw names


def test_always_at_least_two_steps():
    car, _, _ = make([{"a": 0.9, "b": 0.8}, {"a": 0.9, "b": 0.8}])
    result = car(IMAGE, ["a", "b"])
    assert result.steps == 2 and result.live == [0, 1]


def test_all_pruned_keeps_best():
    car, _, _ = make([{"a": 0.2, "b": 0.3}, {"b": 1.0}])
    assert car(IMAGE, ["a", "b"]).live == [1]


def test_single_pass_when_max_iterations_is_one():
    car, _, _ = make([{"a": 0.9, "b": 0.1}], max_iterations=1)
    result = car(IMAGE, ["a", "b"])
    assert result.steps == 1 and result.live == [0, 1]  # no pruning applied


def test_raw_text_after_first_when_configured():
    car, proposals, _ = make([{"a": 0.9, "b": 0.1}, {"a": 1.0}], cam_text_after_first="raw")
    car(IMAGE, ["a", "b"])
    assert proposals.calls[1] == ["a"]


def test_all_zero_maps_correct_form_returns_previous_step_whole():
    table = [{"a": 0.9, "b": 0.8, "c": 0.1}, {"a": 0.9, "b": 0.2}]
    car, _, _ = make(table, proposals=ScriptedProposals(zero_from_step=2), zero_step="correct")
    result = car(IMAGE, ["a", "b", "c"])
    assert result.live == [0, 1, 2] and result.maps.any()  # Q17, correct form: maps AND queries of step 1
    assert result.scores.tolist() == [np.float32(0.9), np.float32(0.8), np.float32(0.1)]
    assert result.steps == 2 and result.trace[1].zero_maps


def test_all_zero_maps_official_form_scores_prunes_and_carries_previous_maps():
    """Q17 as the official loop does it: the zero step is scored on plain images and pruned, the
    loop goes on, and the maps carried forward are the last non-zero ones (step 1's three maps)."""
    table = [{"a": 0.9, "b": 0.8, "c": 0.1}, {"a": 0.9, "b": 0.2}, {"a": 1.0}]
    car, _, clf = make(table, proposals=ScriptedProposals(zero_from_step=2), zero_step="official")
    result = car(IMAGE, ["a", "b", "c"])
    assert result.history == [[0, 1, 2], [0, 1], [0]] and result.steps == 3
    assert [t.zero_maps for t in result.trace] == [False, True, True]
    assert result.trace[1].kept == [0]  # b pruned on the zero step's scores
    assert result.live == [0] and result.scores.tolist() == [1.0]
    assert result.maps.shape == (3, 8, 40)  # step 1's maps, one per step-1 query
    assert result.maps[0, 2:6, 0:3].all() and result.maps[1, 2:6, 4:7].all()
    assert clf.calls[1] == ["a", "b"]


def test_all_zero_maps_official_form_paints_carried_maps_in_order():
    """The official zip pairs the carried maps, in order, with the final queries: query a gets
    map 0; maps 1 and 2 only compete (no label for them)."""
    from car.methods.car.segmenter import QueryPass, SemanticCaR

    table = [{"a": 0.9, "b": 0.8, "c": 0.1}, {"a": 0.9, "b": 0.2}, {"a": 1.0}]
    car, _, _ = make(table, proposals=ScriptedProposals(zero_from_step=2), zero_step="official")
    seg = SemanticCaR(car, [QueryPass(["a", "b", "c"], [5, 6, 7])], crf=None)
    label_map, info = seg({"image": IMAGE})
    assert set(np.unique(label_map).tolist()) == {0, 5}
    assert (label_map[2:6, 0:3] == 5).all() and (label_map[2:6, 4:7] == 0).all()


def test_zero_step_flag_refuses_unknown_values():
    import pytest

    with pytest.raises(ValueError, match="zero_step"):
        make([{"a": 1.0}], zero_step="offical")


def test_legacy_unfiltered_templates_compete_with_all_original_queries():
    table = [{"a": 0.9, "b": 0.1, "c": 0.9}, {"a": 0.9, "b": 0.9, "c": 0.9}]
    car, _, clf = make(table, legacy_unfiltered_templates=True)
    car(IMAGE, ["a", "b", "c"])
    assert clf.calls[1] == ["a", "b", "c"]  # Q15: texts not filtered


def test_duplicate_query_names_keep_their_own_indices():
    car, _, _ = make([{"x": 0.9}, {"x": 0.9}], theta=0.5)
    result = car(IMAGE, ["x", "x"])
    assert result.live == [0, 1]  # Q16: indices, not string lookup


def test_bf16_autocast_runs_and_stays_close(micro_clip, voc_image):
    from car.clip.text import TextEncoder
    from car.methods.car.classifier import MaskClassifier
    from car.methods.car.proposals import ProposalGenerator

    image = voc_image[::4, ::4].copy()

    def run(precision):
        car = CaR(ProposalGenerator(micro_clip, 0.4), MaskClassifier(micro_clip, ["a photo of a {}."]),
                  VisualPrompt(["circle"], 0.4), TextEncoder(micro_clip), theta=0.0, background_words=["sky"],
                  precision=precision, max_iterations=1)
        return car(image, ["cat", "dog", "person"])

    full, half = run("fp32"), run("bf16")
    assert half.maps.dtype == np.float32 and half.maps.shape == full.maps.shape
    assert np.abs(half.maps - full.maps).mean() < 0.1
