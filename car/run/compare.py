"""Run several methods on one dataset and tabulate them side by side with their papers' numbers.

    python -m car.run.compare dataset=voc backbone=vitb16
    python -m car.run.compare dataset=voc20 backbone=vitb16 --methods sclip,naclip --out results/compare_voc20.md
    python -m car.run.compare dataset.loader.num_images=20 --methods car,sclip      # shapes + tiny, 20 images
    python -m car.run.compare --benchmarks all backbone=vitb16 --out results/compare_all.md   # the full table
    python -m car.run.compare --benchmarks all --published-only        # the papers' numbers only, nothing runs

Positional arguments are Hydra overrides applied to every method (then `method=<name>`); each
method is one full `evaluate` run (real configs, the predict-only Lightning module, the same
confusion matrix) whose metrics.json is kept under `<runs dir>/<method>/`. The table shows mIoU
under both averaging rules and, for no-background datasets, both VOC-20/Context-59 protocols (the
row-only one named standard_no_bg for the peers, standard_bg_miss for CaR's background channel);
the paper's number (results/published.yaml: `car:` for CaR, `peers:` for the others) is compared
under the paper's own rule, and every difference between the paper's protocol and this run's is
listed. Writes <out>.md, <out>.json and <out>.png, a grouped bar chart of the methods' mIoU under
each rule next to their papers' numbers (default: compare.md/json/png in the runs directory).
Exit status: 0, or 1 when a method could not run (its row says why).

`--benchmarks all` (or a comma list of BENCHMARKS keys) tabulates every method on the field's eight
benchmarks (VOC-21, Context-60, COCO-Object, VOC-20, Context-59, COCO-Stuff-171, Cityscapes,
ADE20K-150) and on ADE-847 and Context-459 (the official CaR release's extra configs), plus CaR's own
extras ("car + SAM": the paper's SAM column): one cell per method and benchmark with our number and
the paper's beside it. A run that cannot start (no data, no weights) is listed with its one sentence;
`--published-only` runs nothing and lists the papers' numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

from car.config import compose
from car.errors import CarError
from car.reporting.benchmark_table import BENCHMARKS, CAR_SAM, grid_markdown
from car.reporting.compare import chart, markdown, method_configs
from car.run.experiments import run_grid, run_methods
from car.settings import METHODS, validate

PROG = "python -m car.run.compare"


def grid_main(args, parser) -> int:
    chosen = args.methods or ",".join(METHODS + (CAR_SAM,))
    methods = [m.strip() for m in chosen.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS + (CAR_SAM,) + method_configs()]
    if unknown:
        parser.error(f"unknown method(s) {unknown}; choose from {', '.join(METHODS + (CAR_SAM,))} "
                     f"or a conf/method config")
    named = [b.strip() for b in args.benchmarks.split(",") if b.strip()]
    keys = list(BENCHMARKS) if args.benchmarks == "all" else named
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
    command = " ".join([PROG, "--benchmarks", args.benchmarks] + args.overrides
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every method, e.g. dataset=voc")
    parser.add_argument("--methods", default=None,
                        help=f"comma-separated (default {','.join(METHODS)}; with --benchmarks also {CAR_SAM})")
    parser.add_argument("--out", type=Path, default=None, help="Markdown file to write (JSON next to it)")
    parser.add_argument("--runs-dir", type=Path, default=None, help="where the runs go (default outputs/compare/...)")
    parser.add_argument("--benchmarks", default=None,
                        help=f"'all' or a comma list of {', '.join(BENCHMARKS)}: the full table, one run per cell")
    parser.add_argument("--published-only", action="store_true",
                        help="with --benchmarks: list the papers' numbers, run nothing")
    args = parser.parse_intermixed_args(argv)
    if args.benchmarks:
        return grid_main(args, parser)
    if args.published_only:
        parser.error("--published-only needs --benchmarks")
    methods = [m.strip() for m in (args.methods or ",".join(METHODS)).split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS + method_configs()]
    if unknown:
        parser.error(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)} or a conf/method config")
    if any(o.split("=", 1)[0].lstrip("+~") == "method" for o in args.overrides):
        parser.error("choose methods with --methods, not a method= override")
    probe = compose(args.overrides)
    try:
        validate(probe)  # a bad setting stops here, before any method loads a model
    except CarError as err:
        parser.exit(2, f"error: {err}\n")
    dataset = probe.dataset.name
    runs_dir = args.runs_dir or Path(OmegaConf.select(probe, "paths.output_root")) / "compare" / dataset / \
        time.strftime("%Y-%m-%d_%H-%M-%S")
    command = " ".join([PROG] + args.overrides + ["--methods", ",".join(methods)]
                       + (["--out", str(args.out)] if args.out else []))
    rows = run_methods(args.overrides, methods, runs_dir)
    text = markdown(rows, dataset, command)
    out = args.out or runs_dir / "compare.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    payload = {"command": command, "dataset": dataset, "overrides": args.overrides, "methods": methods,
               "date": time.strftime("%Y-%m-%d %H:%M:%S"), "rows": rows}
    out.with_suffix(".json").write_text(json.dumps(payload, indent=2, default=str))
    figure = chart(rows, dataset, out.with_suffix(".png"))
    print(text)
    print(f"wrote {out} and {out.with_suffix('.json')}" + (f" and {figure}" if figure else ""))
    return 1 if any(r["error"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
