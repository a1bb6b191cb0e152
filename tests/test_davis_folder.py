"""Scoring DAVIS-layout folders (car/metrics/davis/folder.py, the car-davis command) on trees made
here: both tasks' annotation folders, and every bad input as one sentence naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from car.metrics.davis import DavisInputError, evaluate_folder
from car.metrics.davis.cli import main

SIZE = (48, 64)  # H, W
PALETTE = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (253 * 3 - 9) + [224, 224, 192]


def save_ids(path: Path, ids: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(ids.astype(np.uint8), mode="P")
    image.putpalette(PALETTE + [0] * (768 - len(PALETTE)))
    image.save(path)


def frame_ids(t: int) -> np.ndarray:
    ids = np.zeros(SIZE, np.uint8)
    ids[5 + t:20 + t, 5:25] = 1
    ids[25:40, 30:55] = 2
    ids[0, :] = 255  # a void row
    return ids


@pytest.fixture
def tree(tmp_path) -> tuple[Path, Path]:
    """A DAVIS root (both annotation folders, 2 sequences of 5 frames) and a perfect results folder."""
    root, results = tmp_path / "DAVIS", tmp_path / "results"
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("walk\nrun\n")
    for sequence in ("walk", "run"):
        for t in range(5):
            gt = frame_ids(t)
            for folder in ("Annotations_unsupervised", "Annotations"):
                save_ids(root / folder / "480p" / sequence / f"{t:05d}.png", gt)
            save_ids(results / sequence / f"{t:05d}.png", np.where(gt == 255, 0, gt))
    return root, results


@pytest.mark.parametrize("task", ["unsupervised", "semi-supervised"])
def test_perfect_results_score_one_in_both_tasks(tree, task):
    scores = evaluate_folder(*tree, task=task)
    assert scores["J&F-Mean"] == 1.0 and scores["num_sequences"] == 2 and scores["num_objects"] == 4
    assert list(scores["per_object"]) == ["walk_1", "walk_2", "run_1", "run_2"]  # ImageSets order


def test_semi_supervised_reads_annotations_and_not_the_first_and_last_predictions(tree):
    root, results = tree
    (results / "walk" / "00000.png").unlink()
    save_ids(results / "walk" / "00004.png", np.zeros(SIZE, np.uint8))
    assert evaluate_folder(root, results, task="semi-supervised")["J&F-Mean"] == 1.0
    save_ids(root / "Annotations" / "480p" / "walk" / "00002.png", np.zeros(SIZE, np.uint8))
    assert evaluate_folder(root, results, task="semi-supervised")["J-Mean"] < 1.0
    with pytest.raises(DavisInputError, match=r"walk/00000.png is missing"):
        evaluate_folder(root, results, task="unsupervised")


def test_unsupervised_partial_prediction_scores_lower(tree):
    root, results = tree
    save_ids(results / "run" / "00002.png", np.zeros(SIZE, np.uint8))
    scores = evaluate_folder(root, results)
    assert scores["per_sequence"]["walk"]["J&F"] == 1.0 and scores["per_sequence"]["run"]["J&F"] < 1.0


def _bad(tree, damage) -> str:
    root, results = tree
    damage(root, results)
    with pytest.raises(DavisInputError) as err:
        evaluate_folder(root, results)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_missing_sequence_frame_and_set_name_the_file(tree):
    import shutil

    assert "results/run is missing" in _bad(tree, lambda r, res: shutil.rmtree(res / "run"))
    assert "walk/00003.png is missing" in _bad(tree, lambda r, res: (res / "walk" / "00003.png").unlink())
    root, results = tree
    with pytest.raises(DavisInputError, match="ImageSets/2017/test-dev.txt is missing"):
        evaluate_folder(root, results, split="test-dev")
    with pytest.raises(DavisInputError, match="nowhere is not a folder"):
        evaluate_folder(root, root.parent / "nowhere")


def _many_ids(root, results):
    ids = np.zeros(SIZE, np.uint8)
    ids[40, 60] = 21
    save_ids(results / "walk" / "00004.png", ids)


DAMAGES = {
    "wrong size": (lambda r, res: save_ids(res / "run" / "00001.png", np.zeros((24, 64), np.uint8)),
                   "run/00001.png is 64x24 but its ground truth"),
    "rgb": (lambda r, res: Image.new("RGB", SIZE[::-1]).save(res / "walk" / "00002.png"),
            "walk/00002.png has 3 channels"),
    "corrupt": (lambda r, res: (res / "walk" / "00001.png").write_bytes(b"not a png"),
                "walk/00001.png cannot be read as an image"),
    "too many ids": (_many_ids, "results/walk: sequence walk: the prediction has id 21"),
    "ground truth size": (lambda r, res: save_ids(r / "Annotations_unsupervised" / "480p" / "run" / "00003.png",
                                                  np.zeros((10, 10), np.uint8)),
                          "run/00003.png is 10x10 but the sequence's first ground-truth frame is 64x48"),
    "no ground truth": (lambda r, res: [p.unlink() for p in (r / "Annotations_unsupervised/480p/run").iterdir()],
                        "480p/run has no ground-truth PNG for sequence run"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_bad_files_are_named_in_one_sentence(tree, damage):
    change, expected = DAMAGES[damage]
    assert expected in _bad(tree, change)


def test_command_line_tables_and_exit_code_two(tree, tmp_path, capsys):
    root, results = tree
    assert main(["--davis-root", str(root), "--results", str(results), "--task", "semi-supervised",
                 "--csv-dir", str(tmp_path / "csv")]) == 0
    out = capsys.readouterr().out
    assert "1.000000" in out and "walk_2" in out and "run_1" in out
    assert (tmp_path / "csv" / "per-sequence_results-val.csv").read_text().splitlines()[1] == "walk_1,1.000,1.000"
    (results / "walk" / "00001.png").unlink()
    assert main(["--davis-root", str(root), "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "walk/00001.png is missing" in err


@pytest.mark.slow  # a subprocess that writes and scores 10 PNGs at 854x480
def test_speed_benchmark_runs_small_and_writes_json(tmp_path):
    """benchmarks/bench_davis.py (the numbers are not asserted): folder and in-memory scores agree."""
    import json
    import subprocess
    import sys

    from tests.conftest import REPO

    out = tmp_path / "davis.json"
    command = ["benchmarks/bench_davis.py", "--sequences", "2", "--frames", "5", "--out", str(out)]
    subprocess.run([sys.executable, *command], cwd=REPO, check=True, capture_output=True, timeout=300)
    report = json.loads(out.read_text())
    assert report["frames"] == 5 and report["sequences"] == 2 and report["size"] == [480, 854]
    assert report["folder_seconds"] > 0 and report["folder_cpu_seconds"] > 0 and 0 < report["J&F-Mean"] < 1


def test_the_command_starts_without_torch():
    """car-davis imports numpy, OpenCV and SciPy only (car.metrics loads its torch metrics on first use)."""
    import subprocess
    import sys

    from tests.conftest import REPO

    code = "import sys, car.metrics.davis.cli; print('torch' in sys.modules, 'torchmetrics' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["False", "False"], out.stderr[-2000:]
