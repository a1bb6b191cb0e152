"""Fidelity to the official CaR code, measured on its golden outputs (`../shared/golden/`).

    checks = check_case(GoldenCase(path), weights)    # config, teacher-forced and end-to-end
    python -m car.fidelity                            # all cases -> results/fidelity.md (+ .json)

Each case is run through our normal path: the golden random weights loaded as a user's OpenAI
checkpoint file, our Hydra config for the dataset the official run used, `build_segmenter`.
"""

from __future__ import annotations

from pathlib import Path

from car.clip.text import flush_all as flush_text_caches
from car.fidelity.checks import Check
from car.fidelity.end_to_end import end_to_end
from car.fidelity.golden import CASES, GoldenCase, Run, build_case, golden_dir, golden_weights, load_cases
from car.fidelity.teacher import teacher_forced
from car.methods.car.segmenter import QueryPass, ReferringCaR
from car.methods.car.text import clean_referring_expression
from car.settings import Thresholds
from car.settings.enums import PROMPT_ORDER

__all__ = ["CASES", "Check", "GoldenCase", "check_case", "config_checks", "golden_dir", "golden_weights", "load_cases"]


def _our_run(case: GoldenCase, run: Run, segmenter):
    """Our label space, background words and prompt for the run (from our config's segmenter)."""
    car = segmenter.car
    if isinstance(segmenter, ReferringCaR):
        queries = [clean_referring_expression(s) for s in case.strings("sentences_input")]
        return QueryPass(queries, list(range(1, len(queries) + 1))), car.prompt
    official = case.queries(run)
    chosen = next((p for p in segmenter.passes if list(p.queries) == official), segmenter.passes[0])
    prompt = car.prompt if chosen.prompt_types is None else car.prompt.with_types(chosen.prompt_types)
    return chosen, prompt


def config_checks(case: GoldenCase, cfg, segmenter) -> list[Check]:
    """Our composed config holds the official run's thresholds, prompts, templates and word lists."""
    checks = []

    def add(run, stage, ours, official):
        checks.append(Check(case.name, run.name, "config", stage, None, "equal", ours == official, None,
                            "" if ours == official else f"ours {ours!r} vs official {official!r}"))

    car = segmenter.car
    templates = case.meta.get("semantic_templates") or ["a clean origami {}."]
    for run in case.runs:
        qp, prompt = _our_run(case, run, segmenter)
        add(run, "θ, λ, η", Thresholds(eta=prompt.eta, theta=car.theta, lam=car.proposals.lam), case.thresholds())
        add(run, "CRF β", float(cfg.car.crf.bg_factor), case.bg_factor(run))
        add(run, "visual prompts", prompt.types, [t for t in PROMPT_ORDER if t in case.prompt_types(run)])
        add(run, "classifier templates", list(car.classifier.templates), list(templates))
        words = car.background_words if qp.background_words is None else list(qp.background_words)
        add(run, "background words", words, case.background_words(run))
        add(run, "queries", list(qp.queries), case.queries(run))
        add(run, "label ids", list(qp.label_ids), case.label_ids(run))
    return checks


def check_case(case: GoldenCase, weights: Path, modes=("config", "TF", "E2E"), device: str = "cpu",
               precision: str = "fp32") -> list[Check]:
    """Every check of one case. `device` (e.g. "cuda") and `precision` (car.precision) change where
    and how our CaR runs for the config and end-to-end checks; the teacher-forced ones feed the
    official float32 CPU tensors to the stages, so they run on the CPU in float32 only."""
    if "TF" in modes and (str(device) != "cpu" or precision != "fp32"):
        raise ValueError("teacher-forced golden checks run on the CPU in fp32; use modes=('config', 'E2E')")
    cfg, segmenter = build_case(case, weights, device, precision)
    checks = config_checks(case, cfg, segmenter) if "config" in modes else []
    if "TF" in modes:
        for run in case.runs:
            qp, prompt = _our_run(case, run, segmenter)
            checks += teacher_forced(case, run, segmenter.car, segmenter.crf, case.bg_factor(run), prompt,
                                     list(qp.queries), list(qp.label_ids))
    if "E2E" in modes:
        checks += end_to_end(case, segmenter)
    flush_text_caches()  # the next case (or test worker) reuses these text embeddings
    return checks
