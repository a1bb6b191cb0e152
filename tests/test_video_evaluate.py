"""dataset=shapes_video end to end: the real Hydra config, the Lightning module, the tiny CLIP; DAVIS-layout
outputs that `python -m car.metrics.davis` re-scores to metrics.json's numbers; a fixed seed, the same masks."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from car.config import compose
from car.errors import CarError
from car.metrics.davis import evaluate_folder
from car.run.evaluation import evaluate
from tests.conftest import REPO

SMALL = ["dataset=shapes_video", "dataset.loader.num_videos=2", "dataset.loader.num_frames=3", "logger=none",
         "trainer.enable_progress_bar=false", "num_overlays=1"]


@pytest.fixture(scope="module")
def video_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("shapes_video")
    return evaluate(compose(SMALL, output_dir=out)), out


def read_tree(folder):
    return {p.relative_to(folder).as_posix(): np.array(Image.open(p)) for p in sorted(folder.rglob("*.png"))}


def test_metrics_json_reports_jf_per_set_and_video(video_run):
    _, out = video_run
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["task"] == "video" and saved["dataset"] == "shapes_video" and saved["num_videos"] == 2
    assert set(saved["expression_sets"]) == {"name", "phrase"} and saved["num_frames"] == 12
    for key in ("j_and_f", "j_mean", "j_recall", "j_decay", "f_mean", "f_recall", "f_decay"):
        assert saved[key] == pytest.approx(np.mean([s[key] for s in saved["expression_sets"].values()]))
    assert 0 <= saved["j_and_f"] <= 100 and saved["frames_per_s"] > 0
    assert set(saved["expression_sets"]["name"]["per_video"]) == {"shapes_val_000", "shapes_val_001"}
    assert saved["config"]["car"]["theta"] == 0.3 and saved["config"]["car"]["prompts"] == ["circle", "blur"]
    assert saved["comparison"]["comparable"] is False  # no published number for the demo world


def test_outputs_are_davis_layout_palette_pngs(video_run):
    _, out = video_run
    pngs = sorted((out / "davis").rglob("*.png"))
    assert [p.relative_to(out / "davis").as_posix() for p in pngs[:3]] == \
        ["name/shapes_val_000/00000.png", "name/shapes_val_000/00001.png", "name/shapes_val_000/00002.png"]
    assert len(pngs) == 2 * 2 * 3
    with Image.open(pngs[0]) as png:
        assert png.mode == "P" and png.size == (64, 64)
    assert (out / "davis_root" / "ImageSets" / "2017" / "val.txt").read_text().split() == \
        ["shapes_val_000", "shapes_val_001"]
    report = (out / "report.html").read_text()
    assert "Scores (DAVIS unsupervised protocol: J&amp;F, J and F per expression set, and their mean)" in report
    assert "J&amp;F per video" in report and "expression sets side by side" in report and "frames/s" in report
    assert [p.relative_to(out / "overlays").as_posix() for p in (out / "overlays").rglob("*.png")] == \
        ["name/shapes_val_000.png"]  # the strip of the first (set, clip)


def test_davis_command_rescores_to_metrics_json(video_run):
    _, out = video_run
    saved = json.loads((out / "metrics.json").read_text())
    for name, ours in saved["expression_sets"].items():
        again = evaluate_folder(out / "davis_root", out / "davis" / name)
        assert again["J&F-Mean"] * 100 == pytest.approx(ours["j_and_f"], abs=1e-9)
        assert again["F-Decay"] * 100 == pytest.approx(ours["f_decay"], abs=1e-9)
        for video, row in again["per_sequence"].items():
            assert row["J"] * 100 == pytest.approx(ours["per_video"][video]["j"], abs=1e-9)
    printed = subprocess.run([sys.executable, "-m", "car.metrics.davis", "--davis-root", str(out / "davis_root"),
                              "--results", str(out / "davis" / "name")], capture_output=True, text=True, cwd=REPO,
                             check=True).stdout
    lines = printed.splitlines()
    row = lines[next(i for i, line in enumerate(lines) if line.split()[:1] == ["J&F-Mean"]) + 1].split()
    assert float(row[0]) == pytest.approx(saved["expression_sets"]["name"]["j_and_f"] / 100, abs=1e-6)


def test_fixed_seed_gives_identical_masks_and_metrics(video_run, tmp_path):
    metrics, out = video_run
    again = evaluate(compose(SMALL + ["num_overlays=0"], output_dir=tmp_path))
    first, second = read_tree(out / "davis"), read_tree(tmp_path / "davis")
    assert first.keys() == second.keys() and all(np.array_equal(first[k], second[k]) for k in first)
    assert again["expression_sets"] == metrics["expression_sets"]


def test_rerun_in_the_same_dir_resumes_and_rewrites_the_layout(video_run, tmp_path):
    metrics, out = video_run
    run = tmp_path / "resume"
    (run / "predictions").mkdir(parents=True)
    for stored in (out / "predictions").rglob("*.npz"):  # a finished run's store, copied
        target = run / stored.relative_to(out)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(stored.read_bytes())
    resumed = evaluate(compose(SMALL + ["num_overlays=0"], output_dir=run))
    assert resumed["resumed_images"] == 4 and resumed["j_and_f"] == metrics["j_and_f"]
    assert read_tree(run / "davis").keys() == read_tree(out / "davis").keys()


@pytest.mark.parametrize("override,message", [
    ("method=sclip", "segmented by CaR only"),
    ("postprocess=sam", "SAM is not involved"),
    ("crf_workers=1", "set crf_workers=0"),
])
@pytest.mark.bad_input("a video dataset with a peer method, SAM or CRF workers", "car-evaluate")
def test_unsupported_combinations_are_one_sentence(tmp_path, override, message, answer):
    with pytest.raises(CarError, match=message) as err:
        evaluate(compose(SMALL + [override, "backbone=tiny_random"], output_dir=tmp_path))
    answer(str(err.value))


@pytest.mark.bad_input("dataset.video.expressions=all (not a choice)", "car-evaluate")
def test_cli_refuses_a_bad_video_setting_with_exit_2(tmp_path, answer):
    done = subprocess.run([sys.executable, "evaluate.py", "dataset=shapes_video", "dataset.video.expressions=all",
                           f"hydra.run.dir={tmp_path}"], capture_output=True, text=True, cwd=REPO, check=False)
    assert done.returncode == 2
    assert "dataset.video.expressions='all' is not allowed; choose one of: together, separately" in done.stderr
    assert "Traceback" not in done.stderr
    answer(f"exit {done.returncode}: {done.stderr.strip()}")


def test_compare_tabulates_a_video_run_in_jf(video_run):
    from car.reporting.compare import markdown, summarise

    metrics, out = video_run
    row = summarise("car", metrics, out)
    assert row["all_rules"] == {"J&F": metrics["j_and_f"], "J": metrics["j_mean"], "F": metrics["f_mean"]}
    assert row["images"] == 2 and row["paper"] is None and row["differences"] == ["no published number"]
    table = markdown([row], "shapes_video", "test")
    assert "| method | backbone | images | J&F | J | F | paper |" in table


def test_benchmark_grid_lists_the_papers_ref_davis17_row():
    from car.reporting.benchmark_table import grid_markdown
    from car.run.experiments import run_grid

    grid = run_grid([], ["car", "sclip", "car+sam"], ["ref_davis17"], None, published_only=True)
    assert grid["ref_davis17"]["car"]["paper"]["j_and_f"] == 30.34
    assert grid["ref_davis17"]["sclip"]["paper"] is None and grid["ref_davis17"]["car+sam"]["paper"] is None
    table = grid_markdown(grid, ["car", "sclip", "car+sam"], "test", published_only=True)
    assert "Ref-DAVIS17 (J&F)" in table and "| car | — / 30.34* |" in table
