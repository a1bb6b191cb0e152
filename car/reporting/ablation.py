"""The table of named config variants of one evaluation (the shapes ablations; the runs themselves:
car/run/experiments.py's `run_variants`)."""

from __future__ import annotations

import re

from car.reporting.tables import markdown


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def expected_key(name: str) -> str:
    """The variant's dataset.published_key, under which results/shapes_expected.yaml holds its numbers."""
    return f"shapes_{slug(name)}"


def markdown_table(rows: list[dict]) -> str:
    header = ["variant", "overrides", "mIoU", "pixel acc.", "mean steps", "images", "s/image"]
    return markdown(header, [[r["variant"], f"`{' '.join(r['overrides']) or '(paper setting)'}`", f"{r['miou']:.2f}",
                              f"{r['pixel_accuracy']:.2f}", f"{r['mean_steps']:.2f}", r["num_images"],
                              f"{r['s_per_image']:.3f}"] for r in rows])
