"""Summarise a sweep: every run's metrics.json under a multirun directory, sorted by mIoU.

    python -m car.sweep outputs/multirun/2024-05-01_12-00-00 [--top 20]

Writes `sweep_summary.md` and `sweep_summary.csv` into that directory and prints the Markdown.
Columns: the run's sub-directory, dataset, backbone, mIoU, η, θ, λ and every other config value
that differs between runs (read from the resolved config stored in metrics.json). The run whose
η/θ/λ equal its dataset's paper values (conf/dataset/<name>.yaml) is marked `← paper`.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from functools import lru_cache
from pathlib import Path

SWEPT = ("car.eta", "car.theta", "car.lambda")
IGNORED = ("output_dir",)  # differs between runs by construction
IGNORED_GROUPS = ("logger",)  # where results are logged, not what they are
GROUPS = ("dataset", "backbone")  # shown by name: their other keys follow from the name
PAPER_MARK = "← paper"


def collect_runs(root: str | Path) -> list[dict]:
    """Every metrics.json below `root` (a run dir or a multirun dir), with its relative path."""
    root = Path(root)
    runs = []
    for path in sorted(root.rglob("metrics.json")):
        try:
            metrics = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            print(f"warning: skipping {path}: {err}", file=sys.stderr)
            continue
        metrics["_run"] = str(path.parent.relative_to(root)) or "."
        runs.append(metrics)
    return runs


def flatten(node, prefix: str = "") -> dict:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: json.dumps(node) if isinstance(node, list) else node}


def differing_keys(configs: list[dict]) -> list[str]:
    keys = sorted(set().union(*configs)) if configs else []
    out = []
    for key in keys:
        if key in IGNORED or key in SWEPT or key.split(".")[0] in GROUPS + IGNORED_GROUPS:
            continue
        values = {json.dumps(c.get(key, "<absent>"), sort_keys=True, default=str) for c in configs}
        if len(values) > 1:
            out.append(key)
    return out


@lru_cache(maxsize=None)
def paper_values(dataset: str) -> tuple[float, float, float] | None:
    """(η, θ, λ) that conf/dataset/<dataset>.yaml sets (the paper's), or None if unknown."""
    from car.config import compose

    try:
        cfg = compose([f"dataset={dataset}"])
    except Exception:
        return None
    return float(cfg.car.eta), float(cfg.car.theta), float(cfg.car["lambda"])


def is_paper_setting(flat: dict) -> bool:
    name = flat.get("dataset.name")
    config_name = flat.get("_config_name") or name
    paper = paper_values(str(config_name)) if config_name else None
    if paper is None:
        return False
    try:
        values = tuple(float(flat[k]) for k in SWEPT)
    except (KeyError, TypeError, ValueError):
        return False
    return all(abs(a - b) < 1e-9 for a, b in zip(values, paper))


def dataset_config_name(metrics: dict) -> str | None:
    """conf/dataset/<name>.yaml's file name (differs from dataset.name for refcoco_plus)."""
    name = metrics.get("dataset")
    loader = ((metrics.get("config") or {}).get("dataset") or {}).get("loader") or {}
    if loader.get("dataset") == "refcoco+":
        return "refcoco_plus"
    return name


def fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def summary_rows(runs: list[dict]) -> tuple[list[str], list[list]]:
    flats = [flatten(r.get("config") or {}) for r in runs]
    extra = differing_keys(flats)
    columns = ["run", "dataset", "backbone", "images", "mIoU", "eta", "theta", "lambda", *extra, "paper"]
    rows = []
    for run, flat in sorted(zip(runs, flats), key=lambda rf: -(rf[0].get("miou") if rf[0].get("miou") is not None
                                                                else float("-inf"))):
        flat["_config_name"] = dataset_config_name(run)
        backbone = run.get("backbone")
        rows.append([run["_run"], run.get("dataset"), backbone.get("name") if isinstance(backbone, dict) else backbone,
                     run.get("num_images"), run.get("miou"), *(flat.get(k) for k in SWEPT),
                     *(flat.get(k) for k in extra), PAPER_MARK if is_paper_setting(flat) else ""])
    return columns, rows


def markdown(columns: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [f"{v:.2f}" if c == "mIoU" and isinstance(v, (int, float)) else fmt(v) for c, v in zip(columns, row)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summarize(root: str | Path, top: int | None = None) -> tuple[str, Path, Path]:
    root = Path(root)
    runs = collect_runs(root)
    if not runs:
        raise SystemExit(f"error: no metrics.json under {root}")
    columns, rows = summary_rows(runs)
    md_path, csv_path = root / "sweep_summary.md", root / "sweep_summary.csv"
    text = markdown(columns, rows[:top] if top else rows)
    md_path.write_text(f"# Sweep summary: {root}\n\n{len(rows)} runs, sorted by mIoU.\n\n{text}\n")
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows([["" if v is None else v for v in row] for row in rows])
    return text, md_path, csv_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m car.sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("multirun_dir", help="a Hydra multirun (sweep) directory")
    parser.add_argument("--top", type=int, default=None, help="print only the best N runs (files keep all)")
    args = parser.parse_args(argv)
    text, md_path, csv_path = summarize(args.multirun_dir, args.top)
    print(text)
    print(f"\nwrote {md_path} and {csv_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
