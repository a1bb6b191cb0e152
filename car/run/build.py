"""Build the objects of a run from its validated settings (car.settings.validate): backbones, the
method's segmenter (by its own factory, car/methods/registry.py), metric, trainer, loggers; the
dataset comes from car/data/build.py.

Lightning, Hydra's instantiation and the metrics (torchmetrics) are imported where they are used:
`car-segment` and the Python API build only a segmenter, and their cold start pays only for that."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from omegaconf import OmegaConf

from car.clip.load import ClipModel, load_clip
from car.errors import CarError
from car.methods.registry import method_of
from car.methods.segmenter import Segmenter
from car.settings import Settings

if TYPE_CHECKING:
    import pytorch_lightning as pl

    from car.metrics import ReferringIoU, SemanticIoU
    from car.metrics.video import VideoMeasures


def load_backbones(settings: Settings, device: str | torch.device = "cpu") -> tuple[ClipModel, ClipModel]:
    """The proposal and classifier CLIPs; one model object when both specs are equal."""
    backbone = settings.config.backbone
    proposal = load_clip(backbone.proposal, device, role="proposal")
    if OmegaConf.to_container(backbone.proposal) == OmegaConf.to_container(backbone.classifier):
        return proposal, proposal
    return proposal, load_clip(backbone.classifier, device, role="classifier")


def build_segmenter(settings: Settings, proposal_clip: ClipModel | None,
                    classifier_clip: ClipModel | None) -> Segmenter:
    """The segmenter of `settings.method`, by its own factory (car/methods/registry.py)."""
    return method_of(settings).build(settings, proposal_clip, classifier_clip)


def predicts_background(settings: Settings) -> bool:
    """Whether the run's label maps can hold the background class (CaR: its CRF background channel
    unless dataset.bg_protocol=standard; a peer: only when the dataset scores background)."""
    return method_of(settings).predicts_background(settings)


def build_metric(settings: Settings) -> ReferringIoU | SemanticIoU | VideoMeasures:
    """The dataset's metric, set up to score by its rule: `compute()` returns what metrics.json records."""
    from car.metrics import ReferringIoU, SemanticIoU
    from car.metrics.video import VideoMeasures

    d, ds = settings.config.dataset, settings.dataset
    if ds.video:
        if settings.method != "car":
            raise CarError(f"video datasets are segmented by CaR only (method=car), not method={settings.method}.")
        if settings.run.crf_workers:
            raise CarError("video datasets run the CRF in the main process (crf_workers overlaps images, not the "
                           "frames of a video); set crf_workers=0.")
        trainer = settings.config.trainer
        devices = trainer.get("devices", 1)
        if trainer.get("strategy") == "ddp" or (isinstance(devices, int) and devices > 1):
            raise CarError("video datasets run in one process (the DAVIS measures are not summed across ranks); "
                           "use trainer=cpu or trainer=gpu.")
        return VideoMeasures(protocol=d.video.protocol, max_objects=d.video.max_objects)
    if ds.referring:
        return ReferringIoU(ds.weighting, unit=ds.unit)
    return SemanticIoU(d.num_classes, ignore_index=ds.ignore_index, average=ds.average, bg_protocol=ds.bg_protocol,
                       class_names=list(d.class_names), predicts_background=predicts_background(settings))


def build_loggers(settings: Settings) -> list:
    import hydra

    return [hydra.utils.instantiate(spec) for spec in (settings.config.get("logger") or {}).values()]


def build_trainer(settings: Settings, loggers: list) -> pl.Trainer:
    import pytorch_lightning as pl

    kwargs = OmegaConf.to_container(settings.config.trainer, resolve=True)
    kwargs["inference_mode"] = False  # gradCAM needs autograd inside predict
    return pl.Trainer(logger=loggers or False, enable_checkpointing=False, **kwargs)
