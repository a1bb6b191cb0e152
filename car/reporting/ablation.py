"""Run named config variants of one evaluation and tabulate them (the shapes table, ablations).

Each variant is a list of Hydra overrides applied on top of common base overrides; every
variant is a full `evaluate` run (real configs, real Lightning module) and its metrics.json is
kept under `<out_root>/<slug>/`.
"""

from __future__ import annotations

import re
from pathlib import Path

from car.config import compose
from car.run.evaluation import evaluate
from car.settings import validate

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


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def expected_key(name: str) -> str:
    return f"shapes_{slug(name)}"


def run_variants(base: list[str], variants: dict[str, list[str]], out_root: str | Path) -> list[dict]:
    rows = []
    for name, overrides in variants.items():
        out = Path(out_root) / slug(name)
        key = [f"dataset.published_key={expected_key(name)}"]  # so `python -m car.reporting.report` can check it
        metrics = evaluate(validate(compose(base + overrides + key, output_dir=out)))
        rows.append({"variant": name, "overrides": overrides, "miou": round(metrics["miou"], 2),
                     "pixel_accuracy": round(metrics["pixel_accuracy"], 2), "mean_steps": round(metrics["mean_steps"], 2),
                     "num_images": metrics["num_images"], "s_per_image": metrics["car_s_per_image"]})
        print(f"{name:55s} mIoU {metrics['miou']:6.2f}  steps {metrics['mean_steps']:.2f}", flush=True)
    return rows


def markdown_table(rows: list[dict]) -> str:
    lines = ["| variant | overrides | mIoU | pixel acc. | mean steps | images | s/image |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | `{' '.join(r['overrides']) or '(paper setting)'}` | {r['miou']:.2f} | "
                     f"{r['pixel_accuracy']:.2f} | {r['mean_steps']:.2f} | {r['num_images']} | {r['s_per_image']:.3f} |")
    return "\n".join(lines)
