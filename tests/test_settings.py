"""The settings table (car/settings/): every rule refuses bad values with one sentence, every
shipped config passes, the CLI stops before any model loads, and the README shows the table."""

import os
import subprocess
import sys
import time
from functools import cache
from pathlib import Path

import pytest

from car.config import CONFIG_DIR, REPO_ROOT, compose
from car.settings import CLOSED, RULES, Rule, SettingsError, markdown, problems, readme_section, validate


def bad_values(rule: Rule) -> list[str]:
    """Hydra override values that `rule` must refuse, derived from the rule itself."""
    if rule.kind in ("number", "integer"):
        values = ["abc", str(rule.low) if rule.low_open else str(rule.low - 1)]
        if rule.high is not None:
            values.append(str(rule.high + 1))
        if rule.kind == "integer":
            values.append(str(rule.low + 0.5))
        return values + ["true"]
    if rule.kind == "flag":
        return ["maybe", "1"]
    if rule.kind == "choice":
        first = next(c for c in rule.choices if c is not None)
        return [first + "x", first.upper()] + ([] if None in rule.choices else ["null"])
    if rule.kind == "subset":
        return ["[nope]", f"[{rule.choices[0]},{rule.choices[0]}]", rule.choices[0]]
    if rule.kind == "templates":
        return ["['a photo']", "[1]", "abc"]
    return ["[1]", "abc"]


CASES = [(rule, value) for rule in RULES for value in bad_values(rule)]


def test_every_rule_kind_gets_bad_values():
    assert {rule.key for rule, _ in CASES} == {rule.key for rule in RULES}


@pytest.mark.parametrize("rule,value", CASES, ids=[f"{r.key}={v}" for r, v in CASES])
def test_each_rule_refuses_a_bad_value_in_one_sentence(rule, value):
    cfg = compose([f"++{rule.key}={value}"])
    with pytest.raises(SettingsError) as info:
        validate(cfg)
    message = str(info.value)
    assert message.startswith(f"{rule.key}=") and " is not allowed; " in message
    assert message.endswith(".") and "\n" not in message and message.count(". ") == 0
    assert rule.allowed in message
    if rule.kind == "choice":
        assert "choose one of: " in message


SHIPPED = ([[]] + [[f"dataset={p.stem}"] for p in sorted((CONFIG_DIR / "dataset").glob("*.yaml"))]
           + [[f"method={p.stem}"] for p in sorted((CONFIG_DIR / "method").glob("*.yaml"))]
           + [[f"postprocess={p.stem}"] for p in sorted((CONFIG_DIR / "postprocess").glob("*.yaml"))]
           + [[f"paper_row={p.stem}"] for p in sorted((CONFIG_DIR / "paper_row").glob("*.yaml"))]
           + [[f"backbone={p.stem}"] for p in sorted((CONFIG_DIR / "backbone").glob("*.yaml"))]
           + [["car=clean"], ["experiment=smoke"], ["car=clean", "dataset=refcocog"],
              ["method=naclip", "dataset=context59"], ["dataset=voc20", "dataset.bg_protocol=standard"]])


@cache
def shipped(overrides: tuple):
    return compose(list(overrides))


@pytest.mark.parametrize("overrides", SHIPPED, ids=[" ".join(o) or "default" for o in SHIPPED])
def test_shipped_configs_pass(overrides):
    assert problems(shipped(tuple(overrides))) == []


def test_every_rule_is_used_by_a_shipped_config():
    """No rule for a key that no config has (a renamed key would leave its rule checking nothing);
    with test_shipped_configs_pass, every rule accepts at least one shipped value."""
    seen = set()
    for overrides in SHIPPED:
        cfg = shipped(tuple(overrides))
        seen |= {r.key for r in RULES if _has(cfg, r.key)}
    assert {r.key for r in RULES} - seen == set()


def _has(cfg, key):
    from omegaconf import OmegaConf

    return OmegaConf.select(cfg, key, default="<absent>", throw_on_resolution_failure=False) != "<absent>"


@pytest.mark.parametrize("override", ["+car.quirks.box_clam=correct", "+car.quirks.foo=1", "+car.crf.sxy=3"])
def test_unknown_key_under_a_closed_group_is_refused(override):
    key = override[1:].split("=")[0]
    parent = key.rsplit(".", 1)[0]
    assert parent in CLOSED
    with pytest.raises(SettingsError, match=rf"^{key} is not a known setting; the keys of {parent} are: .*\.$"):
        validate(compose([override]))


def test_missing_unresolvable_and_optional_keys():
    with pytest.raises(SettingsError, match=r"^car\.theta is missing; it must be a number from 0 to 1\.$"):
        validate(compose(["~car.theta"]))
    with pytest.raises(SettingsError, match=r"^car\.eta cannot be resolved \(.*nope.*\)\.$"):
        validate(compose(["car.eta=${nope}"]))
    with pytest.raises(SettingsError, match=r"^car\.lambda has no value"):
        validate(compose(["car.lambda=???"]))
    # zero_step (Q17) is optional: a config without it passes, a bad value does not
    validate(compose(["~car.quirks.zero_step"] if _has(compose([]), "car.quirks.zero_step") else []))
    with pytest.raises(SettingsError, match="car.quirks.zero_step='offical'"):
        validate(compose(["++car.quirks.zero_step=offical"]))


def test_interpolated_values_are_checked_resolved():
    validate(compose(["car.theta=${car.eta}"]))
    with pytest.raises(SettingsError, match=r"^car\.theta=1\.5 is not allowed"):
        validate(compose(["car.theta=${car.lambda}", "car.lambda=1.5"]))


def test_closed_sets_are_defined_once():
    """The table's choices and the code that consumes them use the same objects from car/settings/enums.py."""
    import car.data.guard
    import car.data.refcoco
    import car.methods.car.prompts
    import car.methods.car.recurrence
    import car.methods.peers.attention
    import car.metrics.referring
    import car.metrics.semantic
    from car.settings import enums

    rules = {r.key: r for r in RULES}
    consumers = [(car.methods.car.prompts, "PROMPT_ORDER"), (car.methods.peers.attention, "ATTENTION_KINDS"),
                 (car.methods.car.recurrence, "CAR_PRECISIONS"), (car.data.guard, "ON_BAD_SAMPLE"),
                 (car.metrics.semantic, "AVERAGE_RULES"), (car.metrics.semantic, "BG_PROTOCOLS"),
                 (car.data.refcoco, "UNITS"), (car.data.refcoco, "GT_OVERLAP"), (car.metrics.referring, "WEIGHTINGS")]
    for module, name in consumers:
        assert getattr(module, name) is getattr(enums, name), f"{module.__name__}.{name} is declared again"
    assert rules["car.prompts"].choices == enums.PROMPT_ORDER
    assert rules["car.precision"].choices == enums.CAR_PRECISIONS
    assert rules["method.name"].choices == enums.METHODS
    assert set(car.methods.car.recurrence.AUTOCAST_DTYPES) == set(rules["method.precision"].choices)  # a dtype each
    methods = {compose([f"method={p.stem}"]).method.name for p in (CONFIG_DIR / "method").glob("*.yaml")}
    assert set(enums.METHODS) == methods  # groupvit_micro_random is method groupvit
    names = {compose([f"postprocess={p.stem}"]).postprocess.name for p in (CONFIG_DIR / "postprocess").glob("*.yaml")}
    assert set(rules["postprocess.name"].choices) == names


def test_validate_returns_typed_frozen_settings():
    import dataclasses

    from car.settings import THRESHOLD_KEYS, Settings, Thresholds
    from car.settings.typed import field_keys

    cfg = compose(["dataset=voc", "car.theta=0.5", "car.lambda=0.4"])
    settings = validate(cfg)
    assert isinstance(settings, Settings) and settings.config is cfg
    assert settings.car.thresholds == Thresholds(eta=cfg.car.eta, theta=0.5, lam=0.4)
    assert settings.car.thresholds.as_dict() == {"eta": cfg.car.eta, "theta": 0.5, "lambda": 0.4}
    assert settings.car.prompts == tuple(cfg.car.prompts) and settings.run.seed == cfg.seed
    assert settings.dataset.task == "semantic" and settings.method == "car" and settings.postprocess == "none"
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.car.thresholds.theta = 0.1
    # every key validation requires is typed (builders never re-default it), and nothing else is
    keys = field_keys()
    assert {r.key for r in RULES if not r.optional} <= set(keys) <= {r.key for r in RULES}
    assert all((f.default is dataclasses.MISSING) != rule.optional
               for rule in RULES if rule.key in keys for _, f in [keys[rule.key]])
    assert tuple(k for k in keys if k in THRESHOLD_KEYS) == THRESHOLD_KEYS
    # an optional key the config lacks takes the field's default
    assert validate(compose(["~car.quirks.zero_step"])).car.quirks.zero_step == "official"
    assert validate(compose(["dataset=refcoco"])).dataset.referring


def test_readme_holds_the_generated_table():
    readme = (REPO_ROOT / "README.md").read_text()
    assert readme_section(readme) == markdown(), "regenerate it: python -m car.settings --update-readme"
    assert all(f"`{r.key}`" in readme for r in RULES)


def _cli(*args, importtime=False):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable] + (["-X", "importtime"] if importtime else []) + ["evaluate.py", *args]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    return proc, time.perf_counter() - start


@pytest.mark.parametrize("override,expected", [
    ("car.quirks.box_clamp=offical",
     "error: car.quirks.box_clamp='offical' is not allowed; choose one of: official, correct."),
    ("car.theta=abc", "error: car.theta='abc' is not allowed; it must be a number from 0 to 1."),
])
def test_cli_stops_before_anything_loads(tmp_path, override, expected):
    proc, seconds = _cli(override, f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2
    assert proc.stderr.strip() == expected and "Traceback" not in proc.stdout + proc.stderr
    assert proc.stdout.strip() == ""
    assert seconds < 30  # the earlier failure came after the models loaded; this one takes about half a second
    # nothing that loads a model or data was even imported
    proc, _ = _cli(override, f"hydra.run.dir={tmp_path}", importtime=True)
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "car.settings" in imported and proc.returncode == 2
    assert not imported & {"torch", "open_clip", "pytorch_lightning", "car.run.evaluation", "car.run.build"}


def test_settings_cli_lists_every_problem(capsys):
    from car.settings import main

    assert main(["car.theta=2", "car.quirks.box_clamp=offical"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: car.theta=2 is not allowed; it must be a number from 0 to 1.",
                   "error: car.quirks.box_clamp='offical' is not allowed; choose one of: official, correct."]
    assert main([]) == 0 and capsys.readouterr().out.strip() == "settings ok"
    assert main(["--markdown"]) == 0 and capsys.readouterr().out.strip() == markdown()


def test_compare_refuses_bad_settings_before_running(tmp_path, capsys):
    from car.run.compare import main

    with pytest.raises(SystemExit) as info:
        main(["car.theta=abc", "--runs-dir", str(tmp_path)])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip() == "error: car.theta='abc' is not allowed; it must be a number from 0 to 1."
    assert not any(Path(tmp_path).iterdir())
