"""The run's settings, checked as soon as the config is composed (before any model or data loads),
and returned typed.

`RULES` (table.py) is the table: one row per config key with what it may hold and what it means.
`validate(cfg)` walks it, raises `SettingsError` (a `CarError`) with one sentence naming the first
bad key, its value and what is allowed, and returns the settings as typed, frozen objects
(`Settings`, typed.py) that the builders take. Keys marked optional are checked only when the
composed config has them (peer methods, SAM, referring datasets). Under the keys of `CLOSED` no
other key is accepted, so a misspelt quirk flag (`+car.quirks.box_clam=correct`) is refused
instead of silently ignored. The closed sets of values are defined once, in enums.py.

    python -m car.settings --markdown          # the table as Markdown (README "Validated settings")
    python -m car.settings --update-readme     # rewrite that README section
    python -m car.settings dataset=voc car.theta=2   # compose with overrides and validate
"""

from __future__ import annotations

from dataclasses import replace

from omegaconf import DictConfig

from car.settings.cli import main, markdown, readme_section, update_readme
from car.settings.enums import METHODS, OTHER_METHODS, PEER_METHODS
from car.settings.table import ABSENT, CLOSED, RULES, Rule, SettingsError, lookup, problems
from car.settings.typed import (
    THRESHOLD_KEYS,
    CarSettings,
    CrfSettings,
    DatasetSettings,
    Quirks,
    RunSettings,
    Settings,
    Thresholds,
    build,
)

__all__ = ["CLOSED", "METHODS", "OTHER_METHODS", "PEER_METHODS", "RULES", "THRESHOLD_KEYS", "CarSettings",
           "CrfSettings", "DatasetSettings", "Quirks", "Rule", "RunSettings", "Settings", "SettingsError",
           "Thresholds", "main", "markdown", "problems", "readme_section", "update_readme", "validate"]


def validate(cfg: DictConfig) -> Settings:
    """Raise `SettingsError` with one sentence on the first bad setting; return the typed settings."""
    found = problems(cfg)
    if found:
        raise SettingsError(found[0])
    return replace(build(Settings, lambda key: lookup(cfg, key), absent=ABSENT), config=cfg)
