"""Experiments made of several evaluation runs: methods side by side on one dataset, the methods x
benchmarks grid, and named config variants of one run (the shapes ablations).

Every run is one full `evaluate` (real configs, the predict-only Lightning module) whose metrics.json
is kept in its own directory; car/reporting/ turns the finished runs into tables and charts.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from car.config import compose
from car.errors import CarError
from car.reporting.ablation import expected_key, slug
from car.reporting.benchmark_table import BENCHMARKS, CAR_SAM, VIDEO_BENCHMARKS, published_cell
from car.reporting.compare import summarise
from car.reporting.results import load_published
from car.run.evaluation import evaluate

# The claims of the paper, in miniature (issue #4): name -> overrides on top of dataset=shapes.
SHAPES_VARIANTS: dict[str, list[str]] = {
    "CaR (recurrence + CRF, circle+blur)": [],
    "single pass, no pruning": ["car.max_iterations=1"],
    "CaR without CRF": ["car.crf.enabled=false"],
    "oracle classes, single pass (gradCAM localisation)": ["car.oracle_queries=true", "car.max_iterations=1"],
    "CaR, bf16 autocast": ["car.precision=bf16"],
    # visual-prompt ablation: full CaR, only the prompt changes (circle+blur = the first row)
    "prompt: circle": ["car.prompts=[circle]"],
    "prompt: blur": ["car.prompts=[blur]"],
    "prompt: blur+gray": ["car.prompts=[blur,gray]"],
    "prompt: gray": ["car.prompts=[gray]"],
    "prompt: mask only (black outside)": ["car.prompts=[black]"],
    "prompt: rectangle": ["car.prompts=[rectangle]"],
    "prompt: contour": ["car.prompts=[contour]"],
    "prompt: none": ["car.prompts=[]"],
}
# The subset re-run by the tests (a regression in any of these fails CI).
SHAPES_CI_VARIANTS = ["CaR (recurrence + CRF, circle+blur)", "single pass, no pruning", "CaR without CRF",
                      "prompt: mask only (black outside)"]


def run_methods(overrides: list[str], methods: list[str], runs_dir: Path,
                per_method: Callable[[str], list[str]] | None = None) -> list[dict]:
    """One evaluate run per method; `per_method(name)` may add overrides of that method's run."""
    rows = []
    for method in methods:
        run_dir = runs_dir / method
        extra = per_method(method) if per_method else []
        try:
            cfg = compose(["logger=none"] + overrides + [f"method={method}"] + extra, output_dir=run_dir)
            metrics = evaluate(cfg)
        except CarError as err:
            rows.append({"method": method, "run_dir": str(run_dir), "error": str(err)})
            print(f"{method}: {err}", file=sys.stderr)
            continue
        rows.append(summarise(method, metrics, run_dir))
    return rows


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


def run_variants(base: list[str], variants: dict[str, list[str]], out_root: str | Path) -> list[dict]:
    """One evaluate run per named variant (its overrides on top of `base`), kept under out_root/<slug>."""
    rows = []
    for name, overrides in variants.items():
        out = Path(out_root) / slug(name)
        key = [f"dataset.published_key={expected_key(name)}"]  # so `python -m car.reporting.report` can check it
        metrics = evaluate(compose(base + overrides + key, output_dir=out))
        rows.append({"variant": name, "overrides": overrides, "miou": round(metrics["miou"], 2),
                     "pixel_accuracy": round(metrics["pixel_accuracy"], 2),
                     "mean_steps": round(metrics["mean_steps"], 2),
                     "num_images": metrics["num_images"], "s_per_image": metrics["car_s_per_image"]})
        print(f"{name:55s} mIoU {metrics['miou']:6.2f}  steps {metrics['mean_steps']:.2f}", flush=True)
    return rows
