"""Several methods' finished runs on one dataset, side by side with their papers' numbers.

The runs come from car/run/experiments.py (`run_methods`, driven by `python -m car.run.compare`,
whose help describes the command). Here: the summary row of one run (`summarise`: mIoU under both
averaging rules and, for no-background datasets, both VOC-20/Context-59 protocols; the paper's number
under the paper's own rule, results/published.yaml; every difference between the paper's protocol and
the run's), the Markdown table of the rows and their grouped bar chart.
"""

from __future__ import annotations

from pathlib import Path

from car.config import CONFIG_DIR
from car.metrics import protocol_name
from car.reporting.tables import fmt
from car.settings.enums import BG_PROTOCOLS, OTHER_METHODS, PEER_METHODS

VIDEO_MEASURES = ("J&F", "J", "F")  # the columns of a video run (summarise_video)


def method_configs() -> tuple[str, ...]:
    """Every conf/method/*.yaml: --methods also takes variants such as groupvit_micro_random (tests, smoke runs)."""
    return tuple(sorted(p.stem for p in (CONFIG_DIR / "method").glob("*.yaml")))


def paper_rule(published: dict | None) -> str | None:
    """The all_rules key the paper's number is computed under, e.g. union_present/standard_no_bg
    (published.yaml's `standard` rows are the peers' papers: no background class predicted)."""
    if not published:
        return None
    protocol = published.get("bg_protocol")
    protocol = protocol_name(protocol, predicts_background=False) if protocol in BG_PROTOCOLS else str(protocol)
    return f"{published.get('average', 'gt_present')}/{protocol}"


def slide_text(slide) -> str:
    return "one pass" if not slide else f"{slide['crop']}/{slide['stride']}"


def protocol_differences(metrics: dict) -> list[str]:
    """How this run's protocol differs from the one the paper's number was measured under."""
    paper = metrics.get("published")
    if not paper:
        return ["no published number"]
    cfg = metrics["config"]
    notes = [] if paper.get("verified") else ["paper number unverified"]
    backbone = model_name(cfg)
    wanted = paper.get("model") if (cfg.get("method") or {}).get("name") in OTHER_METHODS else paper.get("backbone")
    if wanted and wanted != backbone:  # GroupViT's paper row names its own model (`model:`), the others a backbone
        notes.append(f"backbone: paper {wanted}, ours {backbone}")
    rule = paper_rule(paper)
    if rule not in metrics.get("all_rules", {}):
        notes.append(f"paper rule {rule} not computable on this dataset config")
    method = cfg.get("method") or {}
    if method.get("name", "car") == "car":
        return notes
    ours = {"short_side": method["input"]["short_side"], "slide": method["input"]["slide"],
            "postprocess": "pamr" if method["pamr"]["enabled"] else "none", "templates": method["templates"]}
    for key in ("short_side", "postprocess", "templates"):
        if key in paper and paper[key] != ours[key]:
            notes.append(f"{key}: paper {paper[key]}, ours {ours[key]}")
    if "slide" in paper and paper["slide"] != ours["slide"]:
        notes.append(f"window: paper {slide_text(paper['slide'])}, ours {slide_text(ours['slide'])}")
    source = (metrics.get("peer") or {}).get("class_names_source", "")
    if source == "dataset config" and method["name"] in PEER_METHODS:
        notes.append("class names: the dataset config's, not the paper's name file")
    elif paper.get("class_names") and f"/{paper['class_names']}/" not in source.replace("\\", "/"):
        notes.append(f"class names: paper {paper['class_names']} file, ours {source}")
    return notes


def model_name(cfg: dict) -> str:
    """The weights a run used: the backbone config's name, or GroupViT's own model."""
    method = cfg.get("method") or {}
    if method.get("name") in OTHER_METHODS:
        return str((method.get("model") or {}).get("pretrained") or "random init")
    return cfg["backbone"]["name"]


def summarise_video(method: str, metrics: dict, run_dir: Path) -> dict:
    """A video run (Ref-DAVIS17, shapes_video): J&F, J and F (mean over the expression sets) beside the
    paper's J&F; its `all_rules` are the three DAVIS measures."""
    paper = metrics.get("published") or None
    ours = metrics["j_and_f"]
    differences = ["no published number"] if paper is None else \
        ([] if paper.get("verified") else ["paper number unverified"])
    comparison = metrics.get("comparison") or {}
    if paper is not None and not comparison.get("comparable", True):
        differences.append(comparison["reason"])
    return {"method": method, "run_dir": str(run_dir), "dataset": metrics["dataset"],
            "backbone": model_name(metrics["config"]), "images": metrics["num_videos"],
            "headline": {"j_and_f": ours, "j": metrics["j_mean"], "f": metrics["f_mean"]},
            "all_rules": {"J&F": ours, "J": metrics["j_mean"], "F": metrics["f_mean"]},
            "s_per_image": metrics.get("car_s_per_image"),
            "paper": None if paper is None else {"miou": paper["j_and_f"], "rule": "J&F",
                                                 "verified": bool(paper.get("verified", False)),
                                                 "source": paper.get("source")},
            "ours_under_paper_rule": ours if paper is not None else None,
            "delta": None if paper is None else ours - paper["j_and_f"], "differences": differences, "error": None}


def summarise(method: str, metrics: dict, run_dir: Path) -> dict:
    if metrics.get("task") == "video":
        return summarise_video(method, metrics, run_dir)
    paper = metrics.get("published") or None
    rule = paper_rule(paper)
    ours = metrics["all_rules"].get(rule) if rule else None
    return {"method": method, "run_dir": str(run_dir), "dataset": metrics["dataset"],
            "backbone": model_name(metrics["config"]), "images": metrics["num_images"],
            "headline": {"miou": metrics["miou"], "average": metrics["average"], "bg_protocol": metrics["bg_protocol"]},
            "all_rules": metrics["all_rules"], "s_per_image": metrics.get("car_s_per_image"),
            "paper": None if paper is None else {"miou": paper["miou"], "rule": rule,
                                                 "verified": bool(paper.get("verified", False)),
                                                 "source": paper.get("source")},
            "ours_under_paper_rule": ours, "delta": None if ours is None else ours - paper["miou"],
            "differences": protocol_differences(metrics), "error": None}


def markdown(rows: list[dict], dataset: str, command: str) -> str:
    rules = list(dict.fromkeys(r for row in rows if not row["error"] for r in row["all_rules"]))
    head = ["method", "backbone", "images"] + [r if r in VIDEO_MEASURES else f"mIoU {r}" for r in rules] + \
           ["paper", "paper rule", "ours (paper rule)", "Δ", "protocol differences"]
    lines = [f"# Methods compared on {dataset}", "",
             f"Generated by `{command}`. Every row is one `evaluate` run with the same data, metric and",
             "Lightning module. gt_present = mean over classes in the ground truth (CaR's rule); union_present =",
             "classes in the ground truth or the prediction (mmseg's, the peers'). No-background protocols: car =",
             "drop background row and column; standard_no_bg = drop the row only, on predictions without a",
             "background class (the peers' protocol); standard_bg_miss = drop the row only on CaR's predictions,",
             "which have a background class (foreground predicted as background is a miss; no paper reports it).",
             "Video datasets: J&F, J and F of the DAVIS unsupervised protocol, the mean over the expression sets.",
             "Paper numbers from results/published.yaml, compared under the paper's own rule.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        if row["error"]:
            blanks = " | ".join(["—"] * (len(head) - 2))
            lines.append(f"| {row['method']} | {blanks} | not run: {row['error']} |")
            continue
        paper = row["paper"] or {}
        verified = "" if paper.get("verified", True) else "*"
        cells = [row["method"], row["backbone"], str(row["images"])] + [fmt(row["all_rules"].get(r)) for r in rules]
        cells += [fmt(paper.get("miou")) + verified, paper.get("rule") or "—", fmt(row["ours_under_paper_rule"]),
                  fmt(row["delta"], "+.2f"), "; ".join(row["differences"]) or "same protocol"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "`*` paper number not verified against a primary source (see results/published.yaml)."]
    return "\n".join(lines) + "\n"


def chart(rows: list[dict], dataset: str, path: Path) -> Path | None:
    """Grouped bars: one group per method that ran, one bar per rule and one for its paper's number."""
    from car.reporting import plots

    done = [r for r in rows if not r["error"]]
    if not done:
        return None
    rules = list(dict.fromkeys(rule for row in done for rule in row["all_rules"]))
    series = {f"ours {rule}": [row["all_rules"].get(rule) for row in done] for rule in rules}
    series["paper (its own rule)"] = [(row["paper"] or {}).get("miou") for row in done]
    return plots.grouped_bars([row["method"] for row in done], series, path, title=f"methods compared on {dataset}")
