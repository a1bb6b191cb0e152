"""results/fidelity.md is generated from results/fidelity.json (never typed), and the renderer
shows failures. Needs no golden data."""

from __future__ import annotations

import json
from pathlib import Path

from car.fidelity.checks import Check, agreement, box_masks, max_abs, max_rel
from car.fidelity.report import render

RESULTS = Path(__file__).resolve().parents[1] / "results"


def test_committed_fidelity_md_is_rendered_from_its_json():
    payload = json.loads((RESULTS / "fidelity.json").read_text())
    assert (RESULTS / "fidelity.md").read_text() == render(payload)
    assert payload["checks"] and all(c["ok"] for c in payload["checks"])
    cases = {c["case"] for c in payload["checks"]}
    assert len(cases) == 6 and {c["mode"] for c in payload["checks"]} == {"config", "TF", "E2E"}


def _check(**kw):
    base = dict(case="c1_032_default", run="main", mode="TF", stage="Grad-CAM", step=1, kind="abs", value=1e-7,
                limit=2e-5)
    return Check(**{**base, **kw}).as_dict()


def test_render_marks_failures_and_worst_values():
    checks = [_check(), _check(step=2, value=3e-5),
              _check(stage="kept queries", kind="equal", value=False, limit=None),
              _check(mode="config", stage="queries", kind="equal", value=True, limit=None)]
    meta = {"date": "2026-01-01", "threads": 2, "torch": "x", "opencv": "y", "numpy": "z", "seconds": 1.0}
    text = render({"meta": meta, "checks": checks})
    assert "**2 of 4 checks pass.** Failing: c1_032_default Grad-CAM; c1_032_default kept queries" in text
    assert "| Grad-CAM | max abs diff | 3.0e-05 | ≤ 2e-05 |" in text  # worst over the steps
    assert "| kept queries | identical | **no** | identical |" in text


def test_measures():
    assert max_abs([1.0, 2.0], [1.0, 2.5]) == 0.5
    assert max_rel([2.0, 4.0], [2.0, 5.0]) == 0.2
    assert max_abs([1.0], [1.0, 2.0]) == float("inf")  # shape mismatch never passes
    assert agreement([[1, 2, 3], [4, 5, 6]], [[1, 2, 3], [4, 5, 0]], channels=True) == 50.0
    masks = box_masks([[0, 1, 0, 3, 2], [1, 0, 1, 1, 2]], 2, (3, 4))
    assert masks[0].sum() == 4 and masks[0, 0:2, 1:3].all() and masks[1].sum() == 1 and masks[1, 1, 0]
