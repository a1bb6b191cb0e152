"""`python -m car.run.compare`: every method through the real evaluate path, one table with both rules."""

import json

import torch

from car.reporting import compare
from car.run.compare import main as compare_main
from car.settings import METHODS


def test_compare_all_methods_on_a_few_shapes_images(tmp_path):
    out = tmp_path / "table" / "compare_shapes.md"
    methods = [m if m != "groupvit" else "groupvit_micro_random" for m in METHODS]  # no GroupViT weights here
    status = compare_main(["dataset.loader.num_images=2", "num_overlays=0", "trainer.enable_progress_bar=false",
                           "--methods", ",".join(methods), "--runs-dir", str(tmp_path / "runs"), "--out", str(out)])
    assert status == 0
    payload = json.loads(out.with_suffix(".json").read_text())
    assert [r["method"] for r in payload["rows"]] == methods
    for row in payload["rows"]:
        backbone = "random init" if row["method"].startswith("groupvit") else "tiny"  # GroupViT: its own model
        assert row["error"] is None and row["images"] == 2 and row["backbone"] == backbone
        assert set(row["all_rules"]) == {"gt_present/with_background", "union_present/with_background"}
        assert row["differences"] == ["no published number"]  # shapes is no paper's benchmark
        assert (tmp_path / "runs" / row["method"] / "metrics.json").is_file()
    text = out.read_text()
    assert "| mIoU gt_present/with_background | mIoU union_present/with_background |" in text
    assert text.count("| tiny | 2 |") == 5


def test_a_method_that_cannot_run_is_a_row_and_exit_status_1(tmp_path):
    status = compare_main(["dataset=voc", f"paths.data_root={tmp_path / 'nothing'}", "--methods", "sclip",
                           "--runs-dir", str(tmp_path / "runs")])
    assert status == 1
    payload = json.loads((tmp_path / "runs" / "compare.json").read_text())
    assert "Pascal VOC 2012 not found" in payload["rows"][0]["error"]


def _metrics(method_cfg: dict, published: dict, names_source: str = "x/sclip_naclip/cls_voc21.txt") -> dict:
    return {"config": {"backbone": {"name": "vitb16"}, "method": method_cfg},
            "all_rules": {"gt_present/with_background": 50.0, "union_present/with_background": 40.0},
            "published": published, "peer": {"class_names_source": names_source}}


SCLIP_CFG = {"name": "sclip", "input": {"short_side": 336, "slide": {"crop": 224, "stride": 112}},
             "pamr": {"enabled": False}, "templates": "imagenet80"}
SCLIP_ROW = {"miou": 59.1, "backbone": "vitb16", "average": "union_present", "bg_protocol": None, "short_side": 336,
             "slide": {"crop": 224, "stride": 112}, "postprocess": "none", "templates": "imagenet80",
             "class_names": "sclip_naclip", "verified": True}


def test_protocol_differences_are_listed():
    assert compare.protocol_differences(_metrics(SCLIP_CFG, SCLIP_ROW)) == []
    changed = {**SCLIP_CFG, "input": {"short_side": 448, "slide": None}, "pamr": {"enabled": True}}
    notes = compare.protocol_differences(_metrics(changed, {**SCLIP_ROW, "verified": False}, "dataset config"))
    assert notes == ["paper number unverified", "short_side: paper 336, ours 448", "postprocess: paper none, ours pamr",
                     "window: paper 224/112, ours one pass",
                     "class names: the dataset config's, not the paper's name file"]
    voc20 = compare.protocol_differences(_metrics(SCLIP_CFG, {**SCLIP_ROW, "bg_protocol": "standard"}))
    assert voc20 == ["paper rule union_present/standard_no_bg not computable on this dataset config"]
    assert compare.paper_rule(SCLIP_ROW) == "union_present/with_background"


def _voc20_scores(*overrides: str) -> dict:
    """The run's metric's scores, a 3-class VOC-20-style run on one matrix with foreground predicted as background."""
    from car.config import compose
    from car.run.build import build_metric
    from car.settings import validate

    cfg = compose(["dataset=voc20", "dataset.num_classes=3", "dataset.class_names=[bg,a,b]", *overrides])
    confmat = [[5, 1, 0], [2, 3, 0], [1, 0, 4]]  # [K, K], rows = ground truth
    pairs = [(gt, pred) for gt, row in enumerate(confmat) for pred, count in enumerate(row) for _ in range(count)]
    target, pred = torch.tensor(pairs).T  # [P] each: one pixel per counted (gt, pred) pair
    metric = build_metric(validate(cfg))
    metric.update(pred[None], target[None])
    assert metric.confmat.tolist() == confmat
    return metric.compute()


def _rules(row_only: str) -> set[str]:
    return {f"{average}/{protocol}" for average in ("gt_present", "union_present") for protocol in ("car", row_only)}


def test_car_and_a_peer_name_the_row_only_rule_differently():
    """On VOC-20 the row-only rule scores CaR's background-channel predictions (standard_bg_miss)
    and the peers' background-free ones (standard_no_bg, the rule of their published rows)."""
    car, peer = _voc20_scores(), _voc20_scores("method=sclip")
    assert set(car["all_rules"]) == _rules("standard_bg_miss") and set(peer["all_rules"]) == _rules("standard_no_bg")
    assert car["bg_protocol"] == peer["bg_protocol"] == "car"  # voc20's default dataset.bg_protocol
    # dataset.bg_protocol=standard: no background class for either (CaR drops its CRF background channel)
    assert _voc20_scores("dataset.bg_protocol=standard")["bg_protocol"] == "standard_no_bg"
    assert _voc20_scores("dataset.bg_protocol=standard", "method=sclip")["bg_protocol"] == "standard_no_bg"
    published = compare.paper_rule({"miou": 80.4, "average": "union_present", "bg_protocol": "standard"})
    assert published == "union_present/standard_no_bg" and published not in car["all_rules"]


def test_maskclip_stuff_city_ade_rows_are_tcls_rerun_and_unverified():
    """published.yaml: MaskCLIP's COCO-Stuff / Cityscapes / ADE-150 numbers are TCL's re-run (short side 448,
    window 448 / stride 224), not SCLIP's protocol; their primary table was not read, so they are unverified."""
    from omegaconf import OmegaConf

    from car.config import compose
    from car.reporting.results import load_published, published_row

    for dataset, miou in (("coco_stuff", 16.4), ("cityscapes", 12.6), ("ade150", 9.8)):
        cfg = compose(["method=maskclip", f"dataset={dataset}", "backbone=vitb16"])
        row = published_row(cfg)
        assert row["miou"] == miou and row["short_side"] == 448 and row["slide"] == {"crop": 448, "stride": 224}
        assert row["verified"] is False and "TCL" in row["source"] and "2212.00785" in row["source"]
        config = {"backbone": {"name": "vitb16"}, "method": OmegaConf.to_container(cfg.method, resolve=True)}
        notes = compare.protocol_differences({"config": config, "published": row, "all_rules": {},
                                              "peer": {"class_names_source": "x/sclip_naclip/y.txt"}})
        assert notes[0] == "paper number unverified"
        assert f"window: paper 448/224, ours {compare.slide_text(config['method']['input']['slide'])}" in notes
    voc21 = published_row(compose(["method=maskclip", "dataset=voc", "backbone=vitb16"]))
    assert voc21["short_side"] == 336 and voc21["slide"] == {"crop": 224, "stride": 112}  # SCLIP's re-run
    published = load_published(cfg.paths.results_dir)
    groupvit = published["peers"]["groupvit"]["semantic"]
    assert all("TCL" in groupvit[k]["source"] and not groupvit[k]["verified"] for k in ("cityscapes", "ade150"))
    context59 = published["peers"]["maskclip"]["original_protocol"]["context59"]
    assert context59["max_long_side"] == 520  # MaskCLIP's 520x520 keeps the ratio: the long side is 520
