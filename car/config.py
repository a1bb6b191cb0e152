"""Hydra/OmegaConf glue: the `car_root` resolver and a compose helper for tests and notebooks."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "conf"

if not OmegaConf.has_resolver("car_root"):
    OmegaConf.register_new_resolver("car_root", lambda: str(REPO_ROOT))


def compose(overrides: list[str] | None = None, output_dir: str | None = None) -> DictConfig:
    """Compose `conf/config.yaml` with overrides outside of `@hydra.main` (tests, notebooks).

    `output_dir` replaces the `${hydra:runtime.output_dir}` interpolation, which only exists
    inside a Hydra run.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = hydra_compose(config_name="config", overrides=list(overrides or []))
    if output_dir is not None:
        OmegaConf.set_struct(cfg, False)
        cfg.output_dir = str(output_dir)
        OmegaConf.set_struct(cfg, True)
    return cfg
