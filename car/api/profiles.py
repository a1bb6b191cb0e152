"""Profiles: the dataset configs a CarSegmenter is composed from, validated as evaluate.py validates them."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from car.config import CONFIG_DIR, compose
from car.errors import CarError
from car.settings import Settings, validate

DEFAULT_PROFILE = "shapes"
def profiles() -> list[str]:
    """Dataset profiles usable here: the semantic datasets of conf/dataset/ (not the referring or
    video benchmarks such as refcoco, refcocog, ref_davis17 or shapes_video)."""
    return [path.stem for path in sorted((CONFIG_DIR / "dataset").glob("*.yaml")) if _dataset_task(path) == "semantic"]


def _dataset_task(path: Path) -> str:
    """A dataset config's `dataset.task`, following its defaults list (refcocog extends refcoco)."""
    import yaml

    config = yaml.safe_load(path.read_text()) or {}
    task = (config.get("dataset") or {}).get("task")
    parents = [d for d in config.get("defaults") or [] if isinstance(d, str) and d != "_self_"]
    for parent in parents:
        if task is None and (path.parent / f"{parent}.yaml").is_file():
            task = _dataset_task(path.parent / f"{parent}.yaml")
    return task or "semantic"


def backbones() -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / "backbone").glob("*.yaml"))


def compose_profile(profile: str = DEFAULT_PROFILE, backbone: str | None = None, overrides=(),
                    weights: str | None = None) -> DictConfig:
    """The run config of `evaluate.py dataset=<profile> [backbone=<backbone>] <overrides>`, validated.

    `weights`: CLIP weights for both the proposal and the classifier CLIP (a local checkpoint file or
    an open_clip tag such as `openai`); a pair of two architectures takes a tag only (give files with
    backbone.proposal.pretrained=... backbone.classifier.pretrained=...).
    """
    if profile not in profiles():
        raise CarError(f"Unknown profile '{profile}'; choose one of {', '.join(profiles())}.")
    if backbone is not None and backbone not in backbones():
        raise CarError(f"Unknown backbone '{backbone}'; choose one of {', '.join(backbones())}.")
    args = [f"dataset={profile}"] + ([f"backbone={backbone}"] if backbone else []) + [str(o) for o in overrides]
    try:
        cfg = compose(args)
    except Exception as err:  # Hydra's override and composition errors: the first line says what
        raise CarError(f"Cannot compose the config from {' '.join(args)}: {str(err).splitlines()[0]}") from None
    if weights:
        _set_weights(cfg, str(weights))
    check_config(cfg)
    return cfg


def check_config(cfg: DictConfig) -> Settings:
    """car.settings.validate, then what single images need: a semantic profile, CaR, no oracle."""
    settings = validate(cfg)
    if settings.dataset.task != "semantic":
        raise CarError(f"Profile '{cfg.dataset.name}' is a referring profile; use a semantic one "
                       f"({', '.join(profiles())}).")
    if settings.method != "car":
        raise CarError(f"method={settings.method} is a peer method; CarSegmenter runs CaR (method=car).")
    if settings.car.oracle_queries:
        raise CarError("car.oracle_queries=true needs a ground truth; it cannot segment your own image.")
    return settings


def _set_weights(cfg: DictConfig, weights: str) -> None:
    is_file = "/" in weights or Path(weights).suffix in (".pt", ".pth", ".bin", ".safetensors", ".ckpt") \
        or Path(weights).expanduser().exists()
    archs = {cfg.backbone.proposal.arch, cfg.backbone.classifier.arch}
    if is_file and len(archs) > 1:
        raise CarError(f"backbone '{cfg.backbone.name}' pairs {' and '.join(sorted(archs))}, so one weights file "
                       f"cannot serve both; give backbone.proposal.pretrained=... and "
                       f"backbone.classifier.pretrained=... overrides instead.")
    value = str(Path(weights).expanduser().resolve()) if is_file else weights
    for role in ("proposal", "classifier"):
        cfg.backbone[role].pretrained = value
