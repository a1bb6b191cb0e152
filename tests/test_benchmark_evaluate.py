"""End to end on the rest of the benchmark suite (issue #21): every new dataset config through the real
Hydra configs, Lightning module and metrics, with the tiny and the random micro backbones, one small
image per run (plumbing, not accuracy); and the full comparison table of car.run.compare."""

from __future__ import annotations

import json

import pytest

from car.config import compose
from car.reporting.benchmark_table import BENCHMARKS
from car.run.compare import main as compare_main
from car.run.evaluation import evaluate
from car.settings import PEER_METHODS
from tests.conftest import SHARED_DATA, needs_shared_data
from tests.test_benchmark_datasets import ade150_tree, ade847_tree, cityscapes_tree, context459_tree

QUIET = ["logger=none", "num_overlays=0", "trainer.enable_progress_bar=false", "save_predictions=false"]
ONE_TEMPLATE = "method.templates=['a photo of a {}.']"  # the peers' 80-template ensemble is not under test here


@pytest.fixture(autouse=True)
def no_html_report(monkeypatch):
    """The run's HTML report draws a confusion matrix with one tick per class (848 for ADE-847): not under test."""
    import car.run.evaluation

    monkeypatch.setattr(car.run.evaluation, "write_report_safely", lambda run_dir: None, raising=False)


def run(tmp_path, overrides):
    metrics = evaluate(compose(QUIET + [f"paths.data_root={tmp_path}"] + overrides, output_dir=tmp_path / "run"))
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["confusion_matrix"] == metrics["confusion_matrix"]
    return saved


def labelled_pixels(saved) -> int:
    return sum(map(sum, saved["confusion_matrix"]))


def test_car_on_ade150_with_the_tiny_clip(tmp_path):
    ade150_tree(tmp_path, n=1)
    saved = run(tmp_path, ["backbone=tiny", "dataset=ade150"])
    assert saved["dataset"] == "ade150" and saved["num_images"] == 1 and saved["bg_protocol"] == "car"
    assert {"gt_present/car", "gt_present/standard_bg_miss"} <= set(saved["all_rules"])
    assert saved["published"] is None  # no CaR number is published for ADE-150
    assert len(saved["confusion_matrix"]) == 151 and labelled_pixels(saved) == 48 * 48  # on-disk 0 is ignored
    assert all(row == [0] * 151 for row in saved["confusion_matrix"][:1])  # no ground truth in slot 0
    assert [p["name"] for p in saved["config"]["dataset"]["passes"]] == ["stuff", "things"]


def test_car_on_cityscapes_with_the_micro_clip(tmp_path):
    cityscapes_tree(tmp_path, per_city=(("frankfurt", 1),))
    saved = run(tmp_path, ["backbone=micro_random", "dataset=cityscapes"])
    assert saved["num_images"] == 1 and len(saved["confusion_matrix"]) == 20
    assert labelled_pixels(saved) == 32 * (13 + 13 + 12)  # road, car, bicycle blocks; label ids 0 and 255 ignored


@needs_shared_data("coco/annotations/val2017")
@pytest.mark.parametrize("method", PEER_METHODS)
def test_peers_on_coco_stuff(coco_stuff_tree, method):
    root = coco_stuff_tree
    family = "clearclip" if method == "clearclip" else "sclip_naclip"
    saved = run(root.parent, ["backbone=micro_random", f"method={method}", "dataset=coco_stuff", "dataset.limit=1",
                              f"method.class_names.dir={SHARED_DATA / 'class_names' / family}", ONE_TEMPLATE,
                              "method.pamr.enabled=false"])
    assert saved["peer"]["class_names_source"].endswith(f"{family}/cls_coco_stuff.txt")
    assert saved["peer"]["num_queries"] >= 171
    assert "union_present/standard_no_bg" in saved["all_rules"]  # the peers' (mmseg's) rule
    assert saved["published"]["bg_protocol"] == "standard" and saved["published"]["miou"] > 0
    assert all(row[0] == 0 for row in saved["confusion_matrix"])  # no background class is predicted
    short = {"maskclip": 448, "sclip": 448, "clearclip": 448, "naclip": 336}[method]  # per_dataset, 224-px sizes
    assert saved["peer"]["geometry"]["short_side"] == round(short * 64 / 224)


@pytest.fixture
def coco_stuff_tree(tmp_path):
    from tests.test_benchmark_datasets import COCO_IDS, prepare_script

    root = tmp_path / "coco"
    for i in COCO_IDS[:1]:
        for part, name in (("images", f"{i}.jpg"), ("annotations", f"{i}.png")):
            (root / part / "val2017").mkdir(parents=True, exist_ok=True)
            (root / part / "val2017" / name).write_bytes((SHARED_DATA / "coco" / part / "val2017" / name).read_bytes())
    assert prepare_script("coco_stuff").main(["--root", str(root), "--allow-subset"]) == 0
    return root


def test_clearclip_windows_on_cityscapes(tmp_path):
    cityscapes_tree(tmp_path, per_city=(("lindau", 1),))
    saved = run(tmp_path, ["backbone=micro_random", "method=clearclip", "dataset=cityscapes", ONE_TEMPLATE])
    geometry = saved["peer"]["geometry"]  # cfg_city_scapes.py: slide_crop 224 (stride 224), scaled to 64 px
    assert (geometry["crop"], geometry["stride"], geometry["short_side"]) == (64, 64, 128)
    assert saved["published"]["miou"] == 30.0 and saved["published"]["slide"] == {"crop": 224, "stride": 224}


@pytest.mark.parametrize("dataset,tree", [("ade847", ade847_tree), ("context459", context459_tree)])
def test_peer_and_groupvit_on_the_large_label_spaces(tmp_path, dataset, tree):
    tree(tmp_path, n=1)
    saved = run(tmp_path, ["backbone=micro_random", "method=groupvit_micro_random", f"dataset={dataset}",
                           "num_overlays=1"])
    assert saved["peer"]["method"] == "groupvit" and saved["published"] is None
    assert len(list((tmp_path / "run" / "overlays").glob("*.png"))) == 1  # label ids above 255 and 65535 drawn
    size = 848 if dataset == "ade847" else 460
    assert len(saved["confusion_matrix"]) == size and labelled_pixels(saved) == 48 * 48  # 65535 ignored
    saved = run(tmp_path / "sclip", ["backbone=micro_random", "method=sclip", f"dataset={dataset}",
                                     f"paths.data_root={tmp_path}", ONE_TEMPLATE])
    assert saved["peer"]["class_names_source"] == "dataset config"  # no peer name file: split on commas
    assert saved["peer"]["num_queries"] >= size - 1


# ------------------------------------------------------------------------------------ the full table


def test_compare_lists_every_benchmark_and_method_without_running(tmp_path, capsys):
    out = tmp_path / "all.md"
    assert compare_main(["--benchmarks", "all", "--published-only", "--out", str(out)]) == 0
    text = out.read_text()
    for title in ("VOC-21", "Context-60", "COCO-Object", "VOC-20", "Context-59", "COCO-Stuff-171", "Cityscapes",
                  "ADE-150", "ADE-847", "Context-459"):
        assert f" {title} |" in text
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| ")}
    assert set(rows) >= {"car", "maskclip", "sclip", "clearclip", "naclip", "groupvit", "car+sam"}
    assert "— / 19.05" in rows["naclip"] and "— / 52.30" in rows["groupvit"] and "— / 70.20*" in rows["car+sam"]
    payload = json.loads(out.with_suffix(".json").read_text())
    assert payload["benchmarks"] == list(BENCHMARKS) and payload["published_only"]


def test_compare_runs_the_runnable_cells(tmp_path, capsys):
    ade150_tree(tmp_path, n=1)
    out = tmp_path / "grid.md"
    code = compare_main(["--benchmarks", "ade150,voc21", "--methods", "sclip,groupvit", "backbone=micro_random",
                         f"paths.data_root={tmp_path}", "num_overlays=0", "trainer.enable_progress_bar=false",
                         "logger=none",
                         "--runs-dir", str(tmp_path / "runs"), "--out", str(out)])
    assert code == 1  # some cells cannot run here
    payload = json.loads(out.with_suffix(".json").read_text())
    sclip = payload["grid"]["ade150"]["sclip"]
    assert sclip["run"]["error"] is None and sclip["paper"]["miou"] == 16.1
    assert "rule union_present/standard_no_bg" not in " ".join(sclip["run"]["differences"])
    assert "ADE20K-150" not in (payload["grid"]["voc21"]["sclip"]["run"]["error"] or "")
    assert "Pascal VOC 2012 not found" in payload["grid"]["voc21"]["sclip"]["run"]["error"]
    groupvit = payload["grid"]["ade150"]["groupvit"]["run"]["error"]  # hub weights, offline: one sentence
    assert "GroupViT weights 'nvidia/groupvit-gcc-yfcc'" in groupvit or "missing inputs" in groupvit
    text = out.read_text()
    assert "| sclip | " in text and "## Runs" in text
