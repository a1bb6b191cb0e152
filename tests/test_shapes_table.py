"""The shapes table (results/shapes.{md,json}, written by `python scripts/shapes_table.py`).

The committed numbers are checked for the claims they support, and the CI subset is re-run with
the real configs, Lightning module and tiny CLIP and compared with the committed values through
`python -m car.reporting.report` (tolerance in results/shapes_expected.yaml), so a regression fails CI.
"""

import json

import pytest

from car.reporting import report
from car.run.experiments import SHAPES_CI_VARIANTS, SHAPES_VARIANTS, run_variants
from tests.conftest import REPO

TABLE = REPO / "results" / "shapes.json"
EXPECTED = REPO / "results" / "shapes_expected.yaml"


def table() -> dict:
    return json.loads(TABLE.read_text())


def test_committed_table_covers_every_variant_on_200_images():
    t = table()
    assert [r["variant"] for r in t["rows"]] == list(SHAPES_VARIANTS)
    assert [r["variant"] for r in t["ci_rows"]] == SHAPES_CI_VARIANTS
    assert all(r["num_images"] == 200 for r in t["rows"]) and t["command"] == "python scripts/shapes_table.py"
    md = (REPO / "results" / "shapes.md").read_text()
    assert all(f"| {r['miou']:.2f} |" in md for r in t["rows"])  # the Markdown is the JSON's rendering


def test_committed_table_supports_the_claims_it_reached():
    """Recurrence beats one pass without pruning by >= 10 points, the dense CRF helps, mask-only
    prompting ranks below circle+blur, and gradCAM with the true classes localises (>= 40 mIoU;
    results/shapes.md). Not reached with the current tiny CLIP (see car/assets/tiny_clip.md):
    circle+blur at the top of the prompt ranking (blur alone leads) and CaR >= 50 mIoU."""
    by = {r["variant"]: r["miou"] for r in table()["rows"]}
    car = by["CaR (recurrence + CRF, circle+blur)"]
    assert car - by["single pass, no pruning"] >= 10.0
    assert car > by["CaR without CRF"]
    assert car > by["prompt: mask only (black outside)"]
    assert by["oracle classes, single pass (gradCAM localisation)"] >= 40.0
    assert abs(by["CaR, bf16 autocast"] - car) <= 1.0  # bf16 autocast changes little


@pytest.mark.slow
def test_ci_subset_reproduces_the_committed_values(tmp_path):
    t = table()
    base = ["dataset=shapes", "backbone=tiny", "logger=none", "num_overlays=0", "trainer.enable_progress_bar=false",
            f"dataset.loader.num_images={t['ci_images']}"]
    rows = run_variants(base, {k: SHAPES_VARIANTS[k] for k in SHAPES_CI_VARIANTS}, tmp_path)
    assert [r["variant"] for r in rows] == SHAPES_CI_VARIANTS
    assert report.main([str(tmp_path), "--published", str(EXPECTED)]) == 0
