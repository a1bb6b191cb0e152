"""The DAVIS measures against the official toolkit's output on real masks (../shared/golden/davis:
expected.json from davis2017-evaluation's DAVISEvaluation, unsupervised task, on 6 sequences, one of
them, judo-edge, made to hit the edge cases). Skips where the golden data is absent."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np
import pytest

from car.metrics.davis import GLOBAL_KEYS, boundary_measure, region_similarity, score_folder
from car.metrics.davis.cli import main
from car.metrics.davis.folder import read_sequence
from car.metrics.davis.pairs import pairwise_scores

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(os.environ.get("CAR_GOLDEN_DIR", REPO.parent / "shared" / "golden")) / "davis"
pytestmark = pytest.mark.skipif(
    not (GOLDEN / "expected.json").is_file(),
    reason="golden data of the official DAVIS toolkit not found at ../shared/golden/davis "
           "(it sits beside a developer's checkout, not in a user's clone)")


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads((GOLDEN / "expected.json").read_text())


@pytest.fixture(scope="module")
def measures():
    return score_folder(GOLDEN / "DAVIS", GOLDEN / "results", task="unsupervised", split="val")


def test_global_scores_match_the_toolkit(measures, expected):
    scores = measures.compute()
    for key in GLOBAL_KEYS:
        assert scores[key] == pytest.approx(expected["global"][key], abs=1e-3), key
    assert measures.sequences == expected["sequences"]


def test_per_object_scores_and_statistics_match_the_toolkit(measures, expected):
    per_object = measures.compute()["per_object"]
    assert list(per_object) == list(expected["per_object"])  # same objects, same (toolkit's) order
    stats = expected["per_sequence_object_stats"]
    for index, name in enumerate(expected["per_object"]):
        for measure in ("J", "F"):
            assert per_object[name][measure] == pytest.approx(expected["per_object"][name][measure]["M"], abs=1e-3)
            for stat, key in (("M", measure), ("R", f"{measure}-Recall"), ("D", f"{measure}-Decay")):
                assert per_object[name][key] == pytest.approx(stats[measure][stat][index], abs=1e-3), (name, key)


@functools.cache
def _read(sequence: str) -> tuple[np.ndarray, np.ndarray]:
    return read_sequence(GOLDEN / "DAVIS", GOLDEN / "results", "unsupervised", sequence)


@functools.cache
def _id_matched(sequence: str, object_id: int):
    gt, pred = _read(sequence)
    void = gt == 255
    return region_similarity(gt == object_id, pred == object_id, void), \
        boundary_measure(gt == object_id, pred == object_id, void)


@pytest.mark.parametrize("sequence", ["blackswan", "car-shadow", "judo", "shooting", "dogs-jump", "judo-edge"])
def test_per_frame_j_and_f_match_the_toolkit(sequence, expected):
    gt, pred = _read(sequence)
    n_gt = len(expected["per_frame_id_matched"][sequence])
    fast_j, fast_f = pairwise_scores(gt, pred, n_gt, int(pred.max()), gt == 255)  # [P, G, T], every pair
    for object_id, values in expected["per_frame_id_matched"][sequence].items():
        j, f = _id_matched(sequence, int(object_id))
        np.testing.assert_allclose(j, values["J"], rtol=0, atol=1e-6)
        np.testing.assert_allclose(f, values["F"], rtol=0, atol=1e-6)
        k = int(object_id) - 1  # the fast all-pairs path gives the same values
        np.testing.assert_allclose(fast_j[k, k], values["J"], rtol=0, atol=1e-6)
        np.testing.assert_allclose(fast_f[k, k], values["F"], rtol=0, atol=1e-6)


EDGE_CASES = {  # judo-edge (derived from judo, per the golden README): which frames hit which case
    "void band (every third frame)": list(range(1, 34, 3)),
    "void block (every fifth frame)": list(range(2, 34, 5)),
    "all-background prediction (frame 4)": [4],
    "highest predicted id removed (frames 10-19)": list(range(10, 20)),
    "spurious id 7 in a 30x30 corner (frame 25)": [25],
}


def test_judo_edge_differs_from_judo_exactly_in_the_edge_case_frames():
    (gt, pred), (base_gt, base_pred) = _read("judo-edge"), _read("judo")
    void_frames = [t for t in range(len(gt)) if (gt[t] == 255).any()]
    assert void_frames == sorted(set(EDGE_CASES["void band (every third frame)"])
                                 | set(EDGE_CASES["void block (every fifth frame)"]))
    assert [t for t in range(len(gt)) if (gt[t] != base_gt[t]).any()] == void_frames
    changed = [t for t in range(len(pred)) if (pred[t] != base_pred[t]).any()]
    assert changed == [4, *range(10, 20), 25]
    assert not pred[4].any() and all(not (pred[t] == base_pred.max()).any() for t in range(10, 20))
    assert (pred[25][:30, :30] == 7).all()


@pytest.mark.parametrize("case", list(EDGE_CASES))
def test_judo_edge_cases_match_the_toolkit_frame_by_frame(case, expected, measures):
    frames = EDGE_CASES[case]
    for object_id, values in expected["per_frame_id_matched"]["judo-edge"].items():
        j, f = _id_matched("judo-edge", int(object_id))
        np.testing.assert_allclose(j[frames], np.array(values["J"])[frames], rtol=0, atol=1e-6)
        np.testing.assert_allclose(f[frames], np.array(values["F"])[frames], rtol=0, atol=1e-6)
        if case.startswith("all-background"):
            assert j[4] == 0.0 and f[4] == 0.0
    # after the toolkit's matching (with id 20 gone in frames 10-19), the objects score as the toolkit's
    per_object = measures.compute()["per_object"]
    for name in ("judo-edge_1", "judo-edge_2"):
        assert per_object[name]["J"] == pytest.approx(expected["per_object"][name]["J"]["M"], abs=1e-3)
        assert per_object[name]["F"] == pytest.approx(expected["per_object"][name]["F"]["M"], abs=1e-3)


@pytest.mark.slow  # scores the whole tree again
def test_command_prints_the_toolkits_tables_and_writes_csv(tmp_path, capsys, expected):
    code = main(["--davis-root", str(GOLDEN / "DAVIS"), "--results", str(GOLDEN / "results"),
                 "--csv-dir", str(tmp_path), "--json", str(tmp_path / "scores.json")])
    out = capsys.readouterr().out
    assert code == 0
    assert "Global results for val" in out and "Per sequence results for val" in out
    assert " ".join(f"{expected['global'][k]:.6f}" for k in GLOBAL_KEYS) in " ".join(out.split())
    assert "judo-edge_2" in out
    rows = (tmp_path / "global_results-val.csv").read_text().splitlines()
    assert rows[0] == ",".join(GLOBAL_KEYS)
    assert [float(v) for v in rows[1].split(",")] == pytest.approx(
        [expected["global"][k] for k in GLOBAL_KEYS], abs=6e-4)
    per_sequence = (tmp_path / "per-sequence_results-val.csv").read_text().splitlines()
    assert per_sequence[0] == "Sequence,J-Mean,F-Mean" and len(per_sequence) == 1 + len(expected["per_object"])
    saved = json.loads((tmp_path / "scores.json").read_text())
    assert saved["J&F-Mean"] == pytest.approx(expected["global"]["J&F-Mean"], abs=1e-3)
    assert len(saved["per_frame"]["judo-edge_1"]["J"]) == 34
