"""The full table: every method on the field's benchmark suite, beside its papers' numbers.

`python -m car.reporting.compare --benchmarks all [--published-only]` (car/reporting/compare.py
parses the command line and calls `grid_main`): one cell per method and benchmark, each a full
`evaluate` run through `compare.run_methods`, scored under the paper's own rule where there is a
paper number. A cell that cannot run (no data, no weights) holds its one sentence.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from omegaconf import OmegaConf

from car.config import compose
from car.errors import CarError
from car.reporting.compare import METHODS, fmt, method_configs, run_methods
from car.reporting.results import load_published, method_section
from car.settings import validate

# benchmark key (results/published.yaml) -> dataset config; the first eight are the field's suite
BENCHMARKS = {"voc21": "voc", "context60": "context60", "coco_object": "coco_object", "voc20": "voc20",
              "context59": "context59", "coco_stuff": "coco_stuff", "cityscapes": "cityscapes", "ade150": "ade150",
              "ade847": "ade847", "context459": "context459", "ref_davis17": "ref_davis17"}
BENCHMARK_TITLES = {"voc21": "VOC-21", "context60": "Context-60", "coco_object": "COCO-Object", "voc20": "VOC-20",
                    "context59": "Context-59", "coco_stuff": "COCO-Stuff-171", "cityscapes": "Cityscapes",
                    "ade150": "ADE-150", "ade847": "ADE-847", "context459": "Context-459",
                    "ref_davis17": "Ref-DAVIS17 (J&F)"}
VIDEO_BENCHMARKS = ("ref_davis17",)  # CaR only (the paper's §4.3); a peer's cell is not run
CAR_SAM = "car+sam"  # CaR + SAM (postprocess=sam): the paper's extra column




def published_cell(published: dict, method: str, benchmark: str) -> dict | None:
    """The paper's number for one cell (as results.published_row picks it for a run with the
    method's default config): CaR's `car:` row (car+sam: its sam_miou), a peer's `peers:` row with
    its protocol defaults."""
    if benchmark in VIDEO_BENCHMARKS:  # CaR's video row: J&F in the cell's `miou` place (Table 8, no SAM)
        row = (method_section(published, "car").get("video") or {}).get(benchmark) if method == "car" else None
        return {**row, "miou": float(row["j_and_f"])} if isinstance(row, dict) and "j_and_f" in row else None
    if method in ("car", CAR_SAM):
        row = (method_section(published, "car").get("semantic") or {}).get(benchmark)
        if isinstance(row, (int, float)):
            row = {"miou": float(row)}
        if method == CAR_SAM:
            row = None if not isinstance(row, dict) or row.get("sam_miou") is None else \
                {**row, "miou": float(row["sam_miou"])}
        return row if isinstance(row, dict) and row.get("miou") is not None else None
    section = method_section(published, method)
    row = (section.get("semantic") or {}).get(benchmark)
    return {**(section.get("protocol") or {}), **row} if isinstance(row, dict) else None


def ours_in_cell(row: dict) -> float | None:
    """Our number for a cell: under the paper's rule where there is a paper number, else the run's
    own headline (CaR) or mmseg's union rule (the peers, as their papers score)."""
    if row.get("ours_under_paper_rule") is not None:
        return row["ours_under_paper_rule"]
    if row["method"] in ("car", CAR_SAM):
        return row["headline"]["miou"]
    rules = row["all_rules"]
    union = [rule for rule in rules if rule.startswith("union_present/") and not rule.endswith("/car")]
    return rules[union[0]] if union else row["headline"]["miou"]


def run_grid(overrides: list[str], methods: list[str], benchmarks: list[str], runs_dir: Path | None,
             published_only: bool) -> dict:
    """{benchmark: {method: cell}}; a cell holds the paper's row and, unless published_only, the run's
    summary (or its error)."""
    published = load_published(compose(overrides).paths.results_dir)
    grid: dict = {}
    for benchmark in benchmarks:
        grid[benchmark] = {}
        for method in methods:
            cell = {"paper": published_cell(published, method, benchmark), "run": None}
            if method == CAR_SAM and cell["paper"] is None:
                cell["run"] = {"method": method, "error": "the paper has no CaR + SAM number here; not run"}
            elif benchmark in VIDEO_BENCHMARKS and method != "car":
                cell["run"] = {"method": method, "error": "video benchmarks run CaR only; not run"}
            elif not published_only:
                sam = method == CAR_SAM  # CaR's run with postprocess=sam
                extra = [f"dataset={BENCHMARKS[benchmark]}"] + (["postprocess=sam"] if sam else [])
                where = runs_dir / benchmark / (CAR_SAM if sam else "")
                cell["run"] = {**run_methods(overrides + extra, ["car" if sam else method], where)[0], "method": method}
            grid[benchmark][method] = cell
    return grid


def grid_markdown(grid: dict, methods: list[str], command: str, published_only: bool) -> str:
    benchmarks = list(grid)
    head = ["method"] + [BENCHMARK_TITLES.get(b, b) for b in benchmarks]
    lines = ["# Training-free segmenters on the benchmark suite", "",
             f"Generated by `{command}`. Each cell: ours / paper (mIoU). Ours is scored under the paper's own",
             "rule where there is a paper number (the peers: mmseg's union rule, no background class on",
             "VOC-20, Context-59 and the benchmarks without one; CaR: its own rules), else under the run's rule.",
             "`—`: not run or not published; `*`: paper number not verified against a primary source.",
             "The first eight columns are the field's standard suite; ADE-847 and Context-459 come from the",
             "official CaR release's configs. `car+sam` is CaR + SAM (the paper's extra column).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    notes: list[str] = []
    for method in methods:
        cells = [method]
        for benchmark in benchmarks:
            cell = grid[benchmark][method]
            paper = cell["paper"]
            paper_text = "—" if paper is None else fmt(paper["miou"]) + ("" if paper.get("verified") else "*")
            run = cell["run"]
            ours = "—" if run is None or run.get("error") else fmt(ours_in_cell(run))
            cells.append(f"{ours} / {paper_text}")
            if run is not None and run.get("error") and not published_only:
                notes.append(f"{method} on {BENCHMARK_TITLES.get(benchmark, benchmark)}: {run['error']}")
            elif run is not None and not run.get("error"):
                diffs = [d for d in run["differences"] if d not in ("no published number",)]
                if diffs:
                    notes.append(f"{method} on {BENCHMARK_TITLES.get(benchmark, benchmark)} "
                                 f"({run['images']} images): {'; '.join(diffs)}")
        lines.append("| " + " | ".join(cells) + " |")
    sources = sorted({(m, b, grid[b][m]["paper"].get("source")) for b in benchmarks for m in methods
                      if grid[b][m]["paper"] and grid[b][m]["paper"].get("source")})
    if notes:
        lines += ["", "## Runs", ""] + [f"* {n}" for n in notes]
    if sources:
        lines += ["", "## Sources of the paper numbers", ""] + \
                 [f"* {m} / {BENCHMARK_TITLES.get(b, b)}: {src}" for m, b, src in sources]
    return "\n".join(lines) + "\n"


def grid_main(args, parser) -> int:
    chosen = args.methods or ",".join(METHODS + (CAR_SAM,))
    methods = [m.strip() for m in chosen.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS + (CAR_SAM,) + method_configs()]
    if unknown:
        parser.error(f"unknown method(s) {unknown}; choose from {', '.join(METHODS + (CAR_SAM,))} "
                     f"or a conf/method config")
    keys = list(BENCHMARKS) if args.benchmarks == "all" else [b.strip() for b in args.benchmarks.split(",") if b.strip()]
    bad = [b for b in keys if b not in BENCHMARKS]
    if bad:
        parser.error(f"unknown benchmark(s) {bad}; choose from all, {', '.join(BENCHMARKS)}")
    if any(o.split("=", 1)[0].lstrip("+~") in ("method", "dataset") for o in args.overrides):
        parser.error("--benchmarks chooses the datasets and --methods the methods; drop the dataset=/method= override")
    try:
        validate(compose(args.overrides))
    except CarError as err:
        parser.exit(2, f"error: {err}\n")
    runs_dir = args.runs_dir or Path(OmegaConf.select(compose(args.overrides), "paths.output_root")) / "compare" / \
        "benchmarks" / time.strftime("%Y-%m-%d_%H-%M-%S")
    command = " ".join(["python -m car.reporting.compare", "--benchmarks", args.benchmarks] + args.overrides
                       + ["--methods", ",".join(methods)] + (["--published-only"] if args.published_only else [])
                       + (["--out", str(args.out)] if args.out else []))
    grid = run_grid(args.overrides, methods, keys, runs_dir, args.published_only)
    text = grid_markdown(grid, methods, command, args.published_only)
    out = args.out or runs_dir / "compare.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    payload = {"command": command, "overrides": args.overrides, "methods": methods, "benchmarks": keys,
               "published_only": args.published_only, "date": time.strftime("%Y-%m-%d %H:%M:%S"), "grid": grid}
    out.with_suffix(".json").write_text(json.dumps(payload, indent=2, default=str))
    print(text)
    print(f"wrote {out} and {out.with_suffix('.json')}")
    failed = [c for b in grid.values() for c in b.values() if c["run"] and c["run"].get("error")]
    return 1 if failed and not args.published_only else 0
