"""Hydra/OmegaConf glue: where the configs and shipped files are, the path resolvers, and a compose
helper for tests and notebooks.

Two ways to run the package:

* from a source checkout (`python evaluate.py`, `pip install -e .`): the configs are the
  repository's `conf/`, published numbers its `results/`, and `${car_root:}` (data, outputs,
  weights) is the repository;
* installed from a wheel (`pip install car-bench-*.whl`, then `car-evaluate`): the wheel carries
  `conf/` as `car/conf/` and `results/published.yaml` as `car/_results/` (setup.py maps them, git
  keeps one copy), and `${car_root:}` is the current directory at import, so data, outputs and
  weights default to `./data`, `./outputs`, `./weights` (or CAR_DATA_ROOT, CAR_OUTPUT_ROOT,
  CAR_WEIGHTS_DIR).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent  # the repository when car/ is imported from a checkout
FROM_CHECKOUT = (REPO_ROOT / "conf" / "config.yaml").is_file()
CONFIG_DIR = REPO_ROOT / "conf" if FROM_CHECKOUT else PACKAGE_DIR / "conf"
RESULTS_DIR = REPO_ROOT / "results" if FROM_CHECKOUT else PACKAGE_DIR / "_results"
# installed: the directory the process started in (Hydra's job.chdir=true does not move data or outputs)
RUN_ROOT = REPO_ROOT if FROM_CHECKOUT else Path.cwd()


def _constant(value: Path):
    return lambda: str(value)


# ${car_root:} (data, outputs, weights), ${car_package:} (car/: assets), ${car_results:} (published.yaml)
for _name, _value in (("car_root", RUN_ROOT), ("car_package", PACKAGE_DIR), ("car_results", RESULTS_DIR)):
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _constant(_value))


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


def flatten(node, prefix: str = "") -> dict:
    """A nested config (plain dicts) as {"a.b.c": leaf}; `prefix` is put before every key."""
    if not isinstance(node, dict):
        return {prefix: node}
    return {k: v for key, value in node.items()
            for k, v in flatten(value, f"{prefix}.{key}" if prefix else str(key)).items()}
