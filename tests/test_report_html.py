"""Results people look at (issue #20): the run report, readable overlays, sweep and comparison charts.

Every figure comes from a small real run (shapes + tiny CLIP, a few images) and is checked for
content: image size, the classes present in the legend, the HTML referencing every figure and
its numbers equal to metrics.json.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from car.config import compose
from car.data.shapes import ShapesDataset
from car.reporting import report as car_report
from car.reporting import viz
from car.reporting.report_html import main as report_html_main
from car.reporting.report_html import verdict as report_verdict
from car.reporting.sweep import main as sweep_main
from car.run.evaluation import evaluate
from tests.conftest import REPO, SHARED_DATA, load_script, require_shared_data

SHAPES_NAMES = ["background", "circle", "square", "triangle", "star", "cross", "heart", "ring", "crescent", "arrow",
                "bolt"]
FAST = ["logger=none", "trainer.enable_progress_bar=false"]
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


class Report(HTMLParser):
    """The report's <img> tags and the cells that carry a metrics.json key."""

    def __init__(self, text: str):
        super().__init__()
        self.images, self.cells, self._key = [], {}, None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        self._key = attrs.get("data-key") if tag == "td" else None

    def handle_data(self, data):
        if self._key:
            self.cells[self._key] = data
            self._key = None


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory):
    """`python evaluate.py` on 4 shapes images, as a user runs it."""
    out = tmp_path_factory.mktemp("shapes_run")
    proc = subprocess.run([sys.executable, "evaluate.py", "dataset.limit=4", "num_overlays=2", *FAST,
                           f"hydra.run.dir={out}"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, json.loads((out / "metrics.json").read_text()), proc.stdout


def test_evaluate_ends_by_printing_the_report_path(shapes_run):
    out, _, stdout = shapes_run
    assert stdout.strip().splitlines()[-1] == f"report: {out / 'report.html'}"
    assert (out / "report.html").is_file()


def test_report_is_self_contained_and_embeds_every_figure(shapes_run):
    out, _, _ = shapes_run
    text = (out / "report.html").read_text()
    parsed = Report(text)
    files = {img["data-file"]: img["src"] for img in parsed.images}
    on_disk = sorted(p.relative_to(out).as_posix() for p in [*(out / "figures").glob("*.png"),
                                                             *(out / "overlays").glob("*.png")])
    assert {"figures/per_class_iou.png", "figures/confusion_matrix.png", "figures/timing.png"} <= set(on_disk)
    assert sorted(files) == on_disk and len(on_disk) == 5  # 3 charts + num_overlays=2
    for rel, src in files.items():  # embedded: the file opens anywhere, offline
        assert base64.b64decode(src.removeprefix("data:image/png;base64,")) == (out / rel).read_bytes()
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", text) and "<script" not in text


def test_report_numbers_equal_metrics_json(shapes_run):
    out, metrics, _ = shapes_run
    cells = Report((out / "report.html").read_text()).cells
    assert set(metrics["all_rules"]) == {"gt_present/with_background", "union_present/with_background"}
    for rule, value in metrics["all_rules"].items():
        assert cells[f"all_rules/{rule}"] == f"{value:.2f}"
    for name, iou in metrics["per_class_iou"].items():
        assert cells[f"per_class_iou/{name}"] == ("—" if iou is None else f"{iou:.2f}")
    text = (out / "report.html").read_text()
    # shapes has no published number: "not comparable (reason)", the run's own verdict where it has one
    verdict = report_verdict(metrics)
    assert verdict["comparable"] is False and f"not comparable ({verdict['reason']})" in text
    if "comparison" in metrics:
        assert verdict["reason"] == metrics["comparison"]["reason"]
    for field in ("shapes (semantic)", "tiny: car-tiny-vit / car-tiny-vit", "official (car=default)",
                  "resumed / skipped / resized", f"{metrics['elapsed_s']:.1f} s"):
        assert field in text
    timing = metrics["timing_s"]
    assert set(timing) == {"setup", "predict", "car", "scoring"} and timing["car"] <= timing["predict"]


def test_chart_sizes(shapes_run):
    out, metrics, _ = shapes_run
    scored = sum(v is not None for v in metrics["per_class_iou"].values())
    bars = Image.open(out / "figures" / "per_class_iou.png")
    assert bars.width >= 700 and bars.height >= 0.28 * 110 * scored  # a row per scored class
    heat = Image.open(out / "figures" / "confusion_matrix.png")
    assert min(heat.size) >= 450 and np.asarray(heat.convert("L")).std() > 20  # drawn, not blank
    assert Image.open(out / "figures" / "timing.png").width >= 700


def test_rebuild_from_a_finished_run(shapes_run, tmp_path, capsys):
    out, _, _ = shapes_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("report.html", "figures"))
    assert report_html_main([str(copy)]) == 0
    assert capsys.readouterr().out.strip() == str(copy / "report.html")
    assert (copy / "figures" / "confusion_matrix.png").is_file()


# --- overlays --------------------------------------------------------------------------------

def shapes_sample(i: int = 0) -> dict:
    return ShapesDataset(split="val", num_images=200, size=64, seed=0, limit=4)[i]


def test_overlay_is_readable_with_a_legend_of_the_classes_shown(shapes_run):
    out, _, _ = shapes_run
    sample = shapes_sample(0)
    pred = np.zeros_like(sample["target"])
    pred[:10, :10] = 9  # an arrow the ground truth does not have
    canvas = viz.overlay(sample["image"], sample["target"], pred, SHAPES_NAMES)
    assert canvas.width >= 3 * viz.MIN_LONG_SIDE and canvas.height >= viz.MIN_LONG_SIDE
    shown = sorted(set(np.unique(sample["target"]).tolist()) | {0, 9})
    assert viz.IGNORE in shown  # shapes' ground truth has an ignore band around each glyph
    entries = viz.legend_entries(SHAPES_NAMES, [sample["target"], pred], viz.palette_for(SHAPES_NAMES))
    assert [text for text, _ in entries] == [f"{c}: {SHAPES_NAMES[c]}" for c in shown if c != viz.IGNORE] + \
        ["255: ignore (not scored)"]
    # every swatch is drawn in the legend: the last block of rows that are not all white
    pixels = np.asarray(canvas)
    inked = np.flatnonzero(~(pixels == 255).all(axis=(1, 2)))
    start = inked[np.flatnonzero(np.diff(inked) > 1)[-1] + 1]
    assert start > viz.MIN_LONG_SIDE  # below the panels
    legend = pixels[start:].reshape(-1, 3)
    colours = {tuple(c) for c in np.unique(legend, axis=0).tolist()}
    assert all(colour in colours for _, colour in entries)
    # the run's own overlay PNGs are upscaled the same way
    written = Image.open(next((out / "overlays").glob("*.png")))
    assert written.width >= 3 * viz.MIN_LONG_SIDE


def test_overlay_labels_writes_each_name_on_its_region():
    image = np.full((120, 200, 3), 128, np.uint8)
    labels = np.zeros((120, 200), np.int64)
    labels[10:110, 10:90], labels[20:100, 110:190], labels[:5] = 1, 9, 255
    named = viz.overlay_labels(image, labels, SHAPES_NAMES)
    blank = viz.overlay_labels(image, labels, ["", "", "", "", "", "", "", "", "", "", ""])
    assert named.shape == image.shape and named.dtype == np.uint8
    changed = np.any(named != blank, axis=2)
    assert changed[10:110, 10:90].sum() > 30 and changed[20:100, 110:190].sum() > 30  # "circle", "arrow"
    assert not changed[:5].any()  # the ignore band gets no name
    # painted in the palette's colours, which differ between the two classes
    colours = viz.palette_for(SHAPES_NAMES)
    assert np.abs(colours[1].astype(int) - colours[9]).sum() > 150


def test_text_scales_with_the_image():
    assert viz.font_size(64, 64) < viz.font_size(500, 375) < viz.font_size(2000, 1500)
    face = viz.font(40)
    left, top, right, bottom = face.getbbox("circle")
    assert bottom - top >= 20  # Pillow >= 10.1: a scalable default font


def test_palettes_voc_for_voc_separated_otherwise():
    voc = compose(["dataset=voc"]).dataset.class_names
    assert viz.is_voc_like(list(voc)) and (viz.palette_for(list(voc)) == viz.palette()).all()
    shapes = viz.palette_for(SHAPES_NAMES)
    assert not viz.is_voc_like(SHAPES_NAMES)
    fg = shapes[1:11].astype(int)
    distance = np.abs(fg[:, None] - fg[None]).sum(-1) + 1000 * np.eye(10, dtype=int)
    assert distance.min() >= 80  # every pair of shape classes well apart (VOC's circle/arrow: 64)
    assert tuple(shapes[255]) == viz.IGNORE_COLOUR and tuple(shapes[0]) == (0, 0, 0)
    many = viz.separated_palette()[1:81].astype(int)
    assert len({tuple(c) for c in many}) == 80


def test_label_png_round_trips(tmp_path):
    labels = np.zeros((30, 40), np.uint8)
    labels[5:20, 5:25], labels[25:] = 3, 255
    path = tmp_path / "labels.png"
    viz.label_png(labels, viz.palette_for(SHAPES_NAMES)).save(path)
    back = Image.open(path)
    assert back.mode == "P" and (np.asarray(back) == labels).all()
    table = np.asarray(back.getpalette()[:768]).reshape(256, 3)
    assert (table[3] == viz.palette_for(SHAPES_NAMES)[3]).all() and tuple(table[255]) == (255, 255, 255)
    with pytest.raises(ValueError):
        viz.label_png(np.full((2, 2), 300))


# --- sweeps and comparisons --------------------------------------------------------------------

@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    """Three real runs as a multirun directory (2 images each): θ at two values, η at two."""
    root = tmp_path_factory.mktemp("sweep")
    for i, (theta, eta) in enumerate([(0.45, 0.4), (0.6, 0.4), (0.6, 0.3)]):
        evaluate(compose(["dataset.limit=2", "num_overlays=0", *FAST, f"car.theta={theta}", f"car.eta={eta}"],
                         output_dir=root / str(i)))
    return root


def test_sweep_plot_from_real_runs(sweep_dir, capsys):
    assert sweep_main([str(sweep_dir)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {sweep_dir / 'sweep_plot.png'}" in out and "optuna" not in out
    plot = Image.open(sweep_dir / "sweep_plot.png")
    assert plot.width >= 2 * 4.6 * 100 and plot.height >= 400  # one panel per swept threshold (η, θ)
    from car.reporting.sweep import collect_runs, sweep_points

    swept, points = sweep_points(collect_runs(sweep_dir))
    assert swept == ["car.eta", "car.theta"] and sum(p["paper"] for p in points) == 1  # shapes' paper: η .4, θ .6
    assert {p["others"]["car.theta"] for p in points} == {"eta=0.3", "eta=0.4"}  # one line per other setting


def test_optuna_sweep_gets_optunas_own_plots(sweep_dir, tmp_path, capsys):
    pytest.importorskip("optuna.visualization.matplotlib")
    root = tmp_path / "optuna"
    shutil.copytree(sweep_dir, root)
    (root / "optimization_results.yaml").write_text("name: optuna\nbest_params: {}\nbest_value: 0\n")
    assert sweep_main([str(root)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {root / 'optuna_history.png'}" in out
    assert Image.open(root / "optuna_history.png").width >= 600
    # importances: drawn, or left out with a note (Optuna 2.x computes them with scikit-learn)
    if f"wrote {root / 'optuna_importance.png'}" in out:
        assert Image.open(root / "optuna_importance.png").width >= 600
    else:
        assert "note: optuna_importance.png: Optuna could not draw it" in out


def test_report_chart_expected_against_reproduced(sweep_dir):
    assert car_report.main([str(sweep_dir), "--allow-missing"]) == 0
    chart = Image.open(sweep_dir / "report.png")
    assert chart.width >= 600 and chart.height >= 400


def test_compare_chart(sweep_dir):
    from car.reporting.compare import chart

    metrics = json.loads((sweep_dir / "0" / "metrics.json").read_text())
    rows = [{"method": m, "error": None, "all_rules": metrics["all_rules"], "paper": paper}
            for m, paper in (("car", None), ("sclip", {"miou": 30.0}))]
    path = chart(rows + [{"method": "naclip", "error": "no weights"}], "shapes", sweep_dir / "compare.png")
    assert Image.open(path).width >= 550


# --- referring runs ----------------------------------------------------------------------------

def test_referring_report_has_precision_curve_and_iou_histogram(tmp_path):
    require_shared_data("refcoco")
    cfg = compose(["backbone=micro_random", f"paths.data_root={SHARED_DATA}", "dataset=refcoco", "dataset.limit=2",
                   "num_overlays=1", *FAST], output_dir=tmp_path)
    metrics = evaluate(cfg)
    assert len(metrics["unit_ious"]) == metrics["num_units"] == 2
    assert metrics["miou"] == pytest.approx(sum(metrics["unit_ious"]) / 2)  # weighting=unit: the plain mean
    for t in (0.5, 0.9):
        assert metrics[f"precision@{t}"] == pytest.approx(50.0 * sum(i >= 100 * t for i in metrics["unit_ious"]))
    text = (tmp_path / "report.html").read_text()
    files = {img["data-file"] for img in Report(text).images}
    assert {"figures/precision_curve.png", "figures/iou_histogram.png"} <= files
    assert "figures/confusion_matrix.png" not in files
    cells = Report(text).cells
    assert cells["miou"] == f"{metrics['miou']:.2f}" and cells["oiou"] == f"{metrics['oiou']:.2f}"


# --- the screenshot ----------------------------------------------------------------------------

@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (apt-get install chromium) for the headless screenshot")
def test_screenshot_script(shapes_run, tmp_path):
    out, _, _ = shapes_run
    script = load_script(REPO / "scripts" / "screenshot_report.py", "screenshot_report")
    png = script.screenshot(out / "report.html", tmp_path / "shot.png", width=1000, height=900)
    shot = np.asarray(Image.open(png).convert("RGB"))
    assert shot.shape[:2] == (900, 1000) and shot.std() > 10  # a rendered page, not a blank one


def test_label_png_defaults_to_vocs_palette():
    """Without a palette the PNG takes VOC's colours (the argument once shadowed the default function)."""
    img = viz.label_png(np.array([[0, 1], [15, 255]], np.uint8))
    assert img.mode == "P"
    table = np.array(img.getpalette()[: 256 * 3], np.uint8).reshape(-1, 3)
    assert (table[:256] == viz.palette()[:256]).all()
