"""dataset=ref_davis17 end to end on a format-exact DAVIS-2017 + davis_text_annotations tree made here
(the real config, a random-weight backbone, the Lightning module): four expression sets scored
separately, DAVIS-layout results that the DAVIS command re-scores to metrics.json's numbers."""

import json

import numpy as np
import pytest

from car.config import compose
from car.errors import CarError
from car.metrics.davis import evaluate_folder
from car.run.evaluation import evaluate
from tests.ref_davis17_helpers import make_tree as make_davis_tree

VIDEOS = {"bike-packing": (3, 2), "dogs-jump": (4, 2)}  # val videos: (frames, objects)
EXPRESSIONS = {
    "annot1": ['bike-packing 1 "a man riding a bike"', 'bike-packing 2 "a bike"', 'dogs-jump 1 "a black dog"',
               'dogs-jump 2 "a man"'],
    "annot1_full_video": ['bike-packing 1 "a man riding a bike on a trail"', 'bike-packing 2 "a mountain bike"',
                          'dogs-jump 1 "a dog jumping"', 'dogs-jump 2 "a man in a cap"'],
    "annot2": ['bike-packing 1 "a cyclist"', 'bike-packing 2 "the bicycle"', 'dogs-jump 1 "a dog"',
               'dogs-jump 2 "a man in a café"'],
    "annot2_full_video": ['bike-packing 1 "a cyclist on a path"', 'bike-packing 2 "the bicycle"',
                          'dogs-jump 1 "a dog jumping up"', 'dogs-jump 2 "a man"'],
}


def make_tree(data_root):
    """<data_root>/ref_davis17 as datasets/ref_davis17/README.md lays it out (tests/ref_davis17_helpers.py),
    with a misspelt training video in every expression file."""
    lines = {name: found + ['clasic-car 1 "an old car"'] for name, found in EXPRESSIONS.items()}
    return make_davis_tree(data_root / "ref_davis17", VIDEOS, val=list(VIDEOS), train=["classic-car"], lines=lines)


BASE = ["dataset=ref_davis17", "backbone=micro_random", "logger=none", "trainer.enable_progress_bar=false",
        "num_overlays=1", "car.max_iterations=2"]


@pytest.fixture(scope="module")
def ref_davis_run(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    base = make_tree(data)
    out = tmp_path_factory.mktemp("ref_davis17_run")
    return evaluate(compose(BASE + [f"paths.data_root={data}"], output_dir=out)), out, base


def test_four_sets_scored_separately_and_averaged(ref_davis_run):
    _, out, _ = ref_davis_run
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["task"] == "video" and saved["num_videos"] == 2 and saved["num_frames"] == 4 * 7
    assert list(saved["expression_sets"]) == ["annot1", "annot1_full_video", "annot2", "annot2_full_video"]
    assert saved["j_and_f"] == pytest.approx(np.mean([s["j_and_f"] for s in saved["expression_sets"].values()]))
    assert saved["published"]["j_and_f"] == 30.34 and saved["published"]["j"] == 28.15
    assert not saved["comparison"]["comparable"] and "random weights" in saved["comparison"]["reason"]
    assert saved["config"]["car"]["theta"] == 0.3 and saved["config"]["postprocess"]["name"] == "none"


def test_results_rescore_to_metrics_json(ref_davis_run):
    _, out, base = ref_davis_run
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["davis_root"] == str(base / "DAVIS")
    for name, ours in saved["expression_sets"].items():
        pngs = sorted((out / "davis" / name).rglob("*.png"))
        assert len(pngs) == 7 and pngs[0].relative_to(out / "davis").as_posix() == f"{name}/bike-packing/00000.png"
        again = evaluate_folder(base / "DAVIS", out / "davis" / name)
        for theirs, key in (("J&F-Mean", "j_and_f"), ("J-Mean", "j_mean"), ("J-Recall", "j_recall"),
                            ("J-Decay", "j_decay"), ("F-Mean", "f_mean"), ("F-Recall", "f_recall"),
                            ("F-Decay", "f_decay")):
            assert again[theirs] * 100 == pytest.approx(ours[key], abs=1e-9)


@pytest.mark.bad_input("dataset=ref_davis17: a video with more frames than annotations", "car-evaluate")
def test_a_broken_tree_stops_in_one_sentence(tmp_path, answer):
    base = make_tree(tmp_path)
    (base / "DAVIS" / "Annotations_unsupervised" / "480p" / "dogs-jump" / "00003.png").unlink()
    with pytest.raises(CarError, match="dogs-jump has 4 frames .* but 3 annotations") as err:
        evaluate(compose(BASE + [f"paths.data_root={tmp_path}"], output_dir=tmp_path / "run"))
    answer(str(err.value))
    assert not (tmp_path / "run" / "davis").exists()  # nothing half-written


@pytest.mark.bad_input("dataset=ref_davis17 on_bad_sample=skip: a corrupt frame", "car-evaluate")
def test_a_broken_video_is_a_counted_skip(tmp_path, answer):
    base = make_tree(tmp_path)
    (base / "DAVIS" / "JPEGImages" / "480p" / "dogs-jump" / "00002.jpg").write_bytes(b"not a jpeg")
    metrics = evaluate(compose(BASE + [f"paths.data_root={tmp_path}", "on_bad_sample=skip",
                                       "dataset.loader.expression_sets=[annot1]"], output_dir=tmp_path / "run"))
    assert metrics["skipped"]["count"] == 1 and "00002.jpg" in metrics["skipped"]["samples"][0]["error"]
    assert list(metrics["expression_sets"]["annot1"]["per_video"]) == ["bike-packing"]
    assert not (tmp_path / "run" / "davis" / "annot1" / "dogs-jump").exists()
    answer(f"counted skip ({metrics['skipped']['count']} of 2 videos), the video's results not written: "
           f"{metrics['skipped']['samples'][0]['error']}")
