"""Build the dataset of a run from `dataset.loader` (only loaders of car.data may be named there).
Light on purpose (no model code): the input check of car/run/inputs.py builds it before anything loads."""

from __future__ import annotations

import importlib
import inspect

from omegaconf import OmegaConf
from torch.utils.data import Dataset

from car.errors import CarError
from car.settings import Settings


def build_dataset(settings: Settings) -> Dataset:
    """Instantiate `dataset.loader`; loaders that list their files up front get on_missing=on_bad_sample."""
    loader = settings.config.dataset.loader
    target = str(loader.get("_target_", ""))
    if not target.startswith("car.data."):
        raise CarError(f"dataset.loader._target_ must name a loader in car.data, got '{target}'.")
    kwargs = OmegaConf.to_container(loader, resolve=True)
    loader_cls = loader_class(kwargs.pop("_target_"))
    if "on_missing" in inspect.signature(loader_cls).parameters:
        kwargs.setdefault("on_missing", settings.run.on_bad_sample)
    return loader_cls(**kwargs)  # called directly so that CarError reaches the user unwrapped


def loader_class(target: str) -> type:
    """The loader class a dataset config names, or one sentence when this installation lacks it."""
    module, _, name = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ModuleNotFoundError, AttributeError, ValueError):
        raise CarError(f"dataset.loader._target_ names {target}, which this installation does not have: "
                       f"update car-bench or fix the dataset config.") from None
