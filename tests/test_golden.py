"""Fidelity to the official CaR implementation on its golden outputs (../shared/golden).

Each case is checked stage by stage, teacher-forced from the official inputs of that stage
(TF), and end to end (E2E), with the tolerances of the golden README (car/fidelity/teacher.py,
car/fidelity/end_to_end.py): decisions identical at every step, teacher-forced prompted images and
label maps pixel-exact, end-to-end outputs on >= 99.9 % of pixels (99.5 % for c2). The weights are
drawn once per test run by the golden folder's make_weights.py and loaded as a user's
OpenAI-format checkpoint file through our normal loader.
"""

from __future__ import annotations

import pytest

from car.fidelity import CASES, GoldenCase, check_case, golden_dir, golden_weights
from car.fidelity.golden import build_case

GOLDEN = golden_dir()
pytestmark = pytest.mark.skipif(
    GOLDEN is None, reason="golden data of the official implementation not found at ../shared/golden "
                           "(it sits beside a developer's checkout, not in a user's clone)")


@pytest.fixture(scope="session")
def weights(tmp_path_factory, worker_id):
    """The golden weights file, written once per test run (shared by the xdist workers)."""
    base = tmp_path_factory.getbasetemp()
    cache = (base.parent if worker_id != "master" else base) / "golden_weights"
    return golden_weights(GOLDEN, cache)


def _assert_all_ok(checks):
    assert checks, "no check was made"
    failed = [c.describe() for c in checks if not c.ok]
    assert not failed, f"{len(failed)} of {len(checks)} checks differ from the official run:\n" + "\n".join(failed)


@pytest.mark.slow
@pytest.mark.parametrize("name", CASES)
def test_config_and_teacher_forced_stages_match_official(name, weights):
    checks = check_case(GoldenCase(GOLDEN / f"{name}.npz"), weights, modes=("config", "TF"))
    assert {c.mode for c in checks} == {"config", "TF"}
    _assert_all_ok(checks)


@pytest.mark.slow
@pytest.mark.parametrize("name", CASES)
def test_end_to_end_matches_official(name, weights):
    case = GoldenCase(GOLDEN / f"{name}.npz")
    checks = check_case(case, weights, modes=("E2E",))
    steps = [c for c in checks if c.stage == "steps"]
    assert len(steps) == len(case.runs) and all(c.ok for c in steps)
    _assert_all_ok(checks)


def test_config_checks_catch_a_changed_threshold(weights):
    """The comparison can fail: our config with θ changed no longer matches the official run."""
    from car.fidelity import config_checks

    case = GoldenCase(GOLDEN / f"{CASES[0]}.npz")
    cfg, segmenter = build_case(case, weights)
    assert all(c.ok for c in config_checks(case, cfg, segmenter))
    segmenter.car.theta = 0.5
    bad = [c for c in config_checks(case, cfg, segmenter) if not c.ok]
    assert [c.stage for c in bad] == ["θ, λ, η"]


def test_golden_weights_load_as_an_openai_checkpoint(weights):
    """Both CLIPs come from the file through load_clip (its three int entries are dropped)."""
    from car.fidelity.golden import golden_clip

    clip = golden_clip(str(weights))
    assert clip.arch == "ViT-B-16" and clip.pretrained == str(weights)
    assert abs(clip.logit_scale - 14.2985) < 1e-3  # exp(2.66015625), the file's constant
