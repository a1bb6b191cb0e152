"""End to end: every peer method through the real Hydra configs, Lightning module and metrics, on the
offline shapes default and on the real VOC samples (random micro CLIP: plumbing, not accuracy)."""

import json

import pytest

from car.config import compose
from car.errors import CarError
from car.run.evaluation import evaluate
from car.settings import PEER_METHODS
from tests.conftest import SHARED_DATA, require_shared_data

QUIET = ["logger=none", "num_overlays=0", "trainer.enable_progress_bar=false"]
VOC = QUIET + ["backbone=micro_random", f"paths.data_root={SHARED_DATA}"]
PUBLISHED_VOC21 = {"maskclip": 43.4, "sclip": 59.1, "clearclip": 51.8, "naclip": 64.07}


@pytest.mark.parametrize("method", PEER_METHODS)
def test_peer_on_the_shapes_default(tmp_path, method):
    metrics = evaluate(compose(QUIET + [f"method={method}", "dataset.loader.num_images=3"], output_dir=tmp_path))
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["dataset"] == "shapes" and saved["backbone"]["name"] == "tiny" and saved["num_images"] == 3
    assert saved["config"]["method"]["name"] == method and 0 <= saved["miou"] <= 100
    assert set(saved["all_rules"]) == {"gt_present/with_background", "union_present/with_background"}
    assert saved["peer"]["class_names_source"] == "dataset config" and saved["published"] is None
    assert saved["mean_steps"] == 1 and metrics["confusion_matrix"] == saved["confusion_matrix"]
    assert sum(map(sum, saved["confusion_matrix"])) == 3 * 64 * 64 - _ignored_pixels(3)  # every labelled pixel


def _ignored_pixels(n: int) -> int:
    from car.data.shapes import ShapesDataset

    data = ShapesDataset(split="val", num_images=n, size=64, seed=0)
    return sum(int((data[i]["target"] == 255).sum()) for i in range(n))


@pytest.mark.parametrize("method", PEER_METHODS)
def test_peer_on_the_voc_sample(tmp_path, method):
    require_shared_data()
    evaluate(compose(VOC + [f"method={method}", "dataset=voc", "dataset.limit=2"], output_dir=tmp_path))
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["num_images"] == 2 and len(saved["per_class_iou"]) == 21 and 0 <= saved["miou"] <= 100
    assert saved["published"]["miou"] == PUBLISHED_VOC21[method]  # the peer's paper, not CaR's 67.6
    assert saved["published"]["average"] == "union_present" and "verified" in saved["published"]
    family = "clearclip" if method == "clearclip" else "sclip_naclip"
    assert saved["peer"]["class_names_source"].endswith(f"{family}/cls_voc21.txt")
    geometry = saved["peer"]["geometry"]  # paper sizes scaled to the 64-px micro CLIP
    assert geometry["short_side"] == (128 if method == "clearclip" else 96)
    assert geometry["crop"] == {"maskclip": 64, "sclip": 64, "clearclip": 128, "naclip": None}[method]


def test_voc20_no_background_query_reports_both_protocols(tmp_path):
    require_shared_data()
    metrics = evaluate(compose(VOC + ["method=sclip", "dataset=voc20", "dataset.limit=2"], output_dir=tmp_path))
    assert metrics["peer"]["class_names_source"].endswith("cls_voc20.txt")
    assert metrics["published"]["miou"] == 80.4 and metrics["published"]["bg_protocol"] == "standard"
    rules = metrics["all_rules"]
    assert {"gt_present/car", "gt_present/standard_no_bg", "union_present/car", "union_present/standard_no_bg"} \
        == set(rules)
    assert all(row[0] == 0 for row in metrics["confusion_matrix"])  # background is never predicted ...
    assert rules["gt_present/car"] == rules["gt_present/standard_no_bg"]  # ... so both protocols agree


def test_naclip_without_pamr_compares_with_the_no_postprocessing_row(tmp_path):
    require_shared_data()
    metrics = evaluate(compose(VOC + ["method=naclip", "method.pamr.enabled=false", "dataset=voc", "dataset.limit=1"],
                               output_dir=tmp_path))
    assert metrics["published"]["miou"] == 58.9 and metrics["published"]["postprocess"] == "none"
    assert metrics["peer"]["pamr"] is None


def test_worker_pool_gives_identical_metrics(tmp_path):
    require_shared_data()
    base = VOC + ["method=naclip", "dataset=voc", "dataset.limit=1"]
    plain = evaluate(compose(base, output_dir=tmp_path / "plain"))
    pooled = evaluate(compose(base + ["crf_workers=1"], output_dir=tmp_path / "pooled"))
    assert pooled["confusion_matrix"] == plain["confusion_matrix"]


def test_method_is_part_of_the_resume_key(tmp_path):
    base = QUIET + ["backbone=micro_random", "dataset.loader.num_images=1"]
    evaluate(compose(base + ["method=sclip"], output_dir=tmp_path))
    other = evaluate(compose(base + ["method=clearclip"], output_dir=tmp_path))
    assert other["resumed_images"] == 0  # sclip's stored prediction is not reused for clearclip
    again = evaluate(compose(base + ["method=clearclip"], output_dir=tmp_path))
    assert again["resumed_images"] == 1 and again["confusion_matrix"] == other["confusion_matrix"]


def test_peers_refuse_what_they_do_not_do(tmp_path):
    with pytest.raises(CarError, match=r"^method\.name='nope' is not allowed; choose one of: car, maskclip, "):
        evaluate(compose(QUIET + ["backbone=micro_random", "method=sclip", "method.name=nope",
                                  "dataset.loader.num_images=1"], output_dir=tmp_path))
    with pytest.raises(CarError, match="postprocess=sam refines CaR's masks only"):
        evaluate(compose(QUIET + ["backbone=micro_random", "method=sclip", "postprocess=sam_micro_random",
                                  "dataset.loader.num_images=1"], output_dir=tmp_path))
    require_shared_data()
    with pytest.raises(CarError, match="semantic datasets only"):
        evaluate(compose(VOC + ["method=sclip", "dataset=refcoco", "dataset.limit=1"], output_dir=tmp_path))
