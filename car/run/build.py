"""Build the objects of a run from its resolved config: dataset, backbones, the method's segmenter
(by its own factory, car/methods/registry.py), metric, trainer, loggers."""

from __future__ import annotations

import importlib
import inspect

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from car.clip.load import ClipModel, load_clip
from car.errors import CarError
from car.methods.registry import method_of
from car.methods.segmenter import Segmenter
from car.metrics import WEIGHTINGS, ReferringIoU, SemanticIoU
from car.metrics.video import VideoMeasures


def build_dataset(cfg: DictConfig) -> torch.utils.data.Dataset:
    """Instantiate `dataset.loader`; only classes of this package may be named there."""
    target = str(cfg.dataset.loader.get("_target_", ""))
    if not target.startswith("car.data."):
        raise CarError(f"dataset.loader._target_ must name a loader in car.data, got '{target}'.")
    kwargs = OmegaConf.to_container(cfg.dataset.loader, resolve=True)
    loader_cls = loader_class(kwargs.pop("_target_"))
    if "on_missing" in inspect.signature(loader_cls).parameters:  # loaders that list their files up front
        kwargs.setdefault("on_missing", cfg.get("on_bad_sample", "fail"))
    return loader_cls(**kwargs)  # called directly so that CarError reaches the user unwrapped


def loader_class(target: str) -> type:
    """The loader class a dataset config names, or one sentence when this installation lacks it."""
    module, _, name = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ModuleNotFoundError, AttributeError, ValueError):
        raise CarError(f"dataset.loader._target_ names {target}, which this installation does not have: "
                       f"update car-bench or fix the dataset config.") from None


def load_backbones(cfg: DictConfig, device: str | torch.device = "cpu") -> tuple[ClipModel, ClipModel]:
    """The proposal and classifier CLIPs; one model object when both specs are equal."""
    proposal = load_clip(cfg.backbone.proposal, device, role="proposal")
    if OmegaConf.to_container(cfg.backbone.proposal) == OmegaConf.to_container(cfg.backbone.classifier):
        return proposal, proposal
    return proposal, load_clip(cfg.backbone.classifier, device, role="classifier")


def is_referring(cfg: DictConfig) -> bool:
    return cfg.dataset.get("task", "semantic") == "referring"


def is_video(cfg: DictConfig) -> bool:
    """Video datasets (shapes_video, ref_davis17): the referring CaR per frame, scored with the DAVIS measures."""
    return cfg.dataset.get("task", "semantic") == "video"


def build_segmenter(cfg: DictConfig, proposal_clip: ClipModel | None, classifier_clip: ClipModel | None) -> Segmenter:
    """The segmenter of `cfg.method.name`, by its own factory (car/methods/registry.py)."""
    return method_of(cfg).build(cfg, proposal_clip, classifier_clip)


def predicts_background(cfg: DictConfig) -> bool:
    """Whether the run's label maps can hold the background class (CaR: its CRF background channel
    unless dataset.bg_protocol=standard; a peer: only when the dataset scores background)."""
    return method_of(cfg).predicts_background(cfg)


def build_metric(cfg: DictConfig) -> ReferringIoU | SemanticIoU | VideoMeasures:
    """The dataset's metric, set up to score by its rule: `compute()` returns what metrics.json records."""
    d = cfg.dataset
    if is_video(cfg):
        if cfg.method.name != "car":
            raise CarError(f"video datasets are segmented by CaR only (method=car), not method={cfg.method.name}.")
        if cfg.get("crf_workers", 0):
            raise CarError("video datasets run the CRF in the main process (crf_workers overlaps images, not the "
                           "frames of a video); set crf_workers=0.")
        devices = cfg.trainer.get("devices", 1)
        if cfg.trainer.get("strategy") == "ddp" or (isinstance(devices, int) and devices > 1):
            raise CarError("video datasets run in one process (the DAVIS measures are not summed across ranks); "
                           "use trainer=cpu or trainer=gpu.")
        return VideoMeasures(protocol=d.video.protocol, max_objects=d.video.max_objects)
    if is_referring(cfg):
        weighting = d.get("weighting", "unit")
        if weighting not in WEIGHTINGS:
            raise CarError(f"dataset.weighting must be {' or '.join(WEIGHTINGS)} (unit: every evaluation unit "
                           f"counts once; sentence: weighted by its sentences), got '{weighting}'.")
        return ReferringIoU(weighting, unit=d.loader.unit)
    return SemanticIoU(d.num_classes, ignore_index=d.ignore_index, average=d.average, bg_protocol=d.bg_protocol,
                       class_names=list(d.class_names), predicts_background=predicts_background(cfg))


def build_loggers(cfg: DictConfig) -> list:
    return [hydra.utils.instantiate(spec) for spec in (cfg.get("logger") or {}).values()]


def build_trainer(cfg: DictConfig, loggers: list) -> pl.Trainer:
    kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    kwargs["inference_mode"] = False  # gradCAM needs autograd inside predict
    return pl.Trainer(logger=loggers or False, enable_checkpointing=False, **kwargs)
