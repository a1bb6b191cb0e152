"""Build the objects of a run from its resolved config: dataset, CaR segmenter, trainer, loggers."""

from __future__ import annotations

import importlib
import inspect

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from car.methods.peers.build import build_peer_segmenter
from car.clip.load import ClipModel, load_clip
from car.errors import CarError
from car.methods.car.classifier import MaskClassifier
from car.postprocess.crf import DenseCRF
from car.methods.car.prompts import VisualPrompt
from car.methods.car.proposals import ProposalGenerator
from car.methods.car.recurrence import CaR
from car.methods.car.segmenter import QueryPass, ReferringCaR, SemanticCaR
from car.methods.car.video import VideoCaR
from car.methods.car.text import TextEncoder
from car.metrics import WEIGHTINGS, ReferringIoU, SemanticIoU
from car.metrics.video import VideoMeasures
from car.methods.pixel_budget import DEFAULT_MAX_PIXELS, PixelBudget
from car.postprocess.sam import build_sam


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


def build_car(cfg: DictConfig, proposal_clip: ClipModel, classifier_clip: ClipModel) -> CaR:
    c, q = cfg.car, cfg.car.quirks
    referring = is_referring(cfg) or is_video(cfg)  # video runs the referring CaR on each frame
    proposals = ProposalGenerator(proposal_clip, lam=c["lambda"], affinity_layers=c.affinity_layers,
                                  box_clamp=q.box_clamp, posemb_fp16_round=q.posemb_fp16_round,
                                  chunk_size=c.chunk_size)
    classifier = MaskClassifier(classifier_clip, list(c.templates), skip_last_block=q.classifier_skip_last_block,
                                batch_size=c.classifier_batch_size, posemb_fp16_round=q.posemb_fp16_round)
    text_cache = cfg.paths.get("cache_dir")  # on-disk text embeddings, reused across runs and sweeps
    classifier.text = TextEncoder(classifier_clip, cache_dir=text_cache)
    prompt = VisualPrompt(list(c.prompts), eta=c.eta, gray_weights=q.gray_weights)
    return CaR(proposals, classifier, prompt, TextEncoder(proposal_clip, cache_dir=text_cache), theta=c.theta,
               background_words=list(c.background_words), cam_text_after_first=q.cam_text_after_first,
               max_iterations=c.max_iterations, legacy_unfiltered_templates=q.legacy_unfiltered_templates,
               compete=not referring,
               char_filter_bug=referring and not c.templates and q.refer_text_filter == "official_chars",
               precision=c.precision, zero_step=q.get("zero_step", "official"))


def build_crf(cfg: DictConfig) -> DenseCRF | None:
    k = cfg.car.crf
    if not k.enabled:
        return None
    return DenseCRF(iterations=k.iterations, gaussian_sxy=k.gaussian_sxy, gaussian_compat=k.gaussian_compat,
                    bilateral_sxy=k.bilateral_sxy, bilateral_srgb=k.bilateral_srgb,
                    bilateral_compat=k.bilateral_compat, image_mode=k.image)


def build_budget(cfg: DictConfig, patch_size: int) -> PixelBudget:
    """car.max_pixels / car.resize_large: the largest image CaR runs on at its own size, for a
    proposal CLIP with `patch_size`-px patches (car/methods/pixel_budget.py)."""
    return PixelBudget(int(cfg.car.get("max_pixels", DEFAULT_MAX_PIXELS)), bool(cfg.car.get("resize_large", True)),
                       patch_size)


def build_segmenter(cfg: DictConfig, proposal_clip: ClipModel, classifier_clip: ClipModel):
    """Semantic: queries and label ids from the dataset config (`queries` for ids 1..K, or
    `passes`). Referring: queries are each sample's sentences."""
    if cfg.method.name != "car":  # a peer method (car/methods/peers): same protocol, its own segmenter
        return build_peer_segmenter(cfg, proposal_clip, classifier_clip)
    d = cfg.dataset
    if is_video(cfg):
        if "postprocess" in cfg and cfg.postprocess.get("name", "none") != "none":
            raise CarError("video datasets run CaR with the dense CRF only (the paper's §4.3: SAM is not involved); "
                           "drop the postprocess override.")
        return VideoCaR(build_car(cfg, proposal_clip, classifier_clip), build_crf(cfg),
                        bg_factor=cfg.car.crf.bg_factor, expressions=d.video.expressions,
                        budget=build_budget(cfg, proposal_clip.patch_size))
    sam_masks, sam_match = build_sam(cfg)  # (None, None) unless postprocess=sam
    if is_referring(cfg):
        return ReferringCaR(build_car(cfg, proposal_clip, classifier_clip), build_crf(cfg),
                            bg_factor=cfg.car.crf.bg_factor, crf_onehot_fixed=cfg.car.quirks.crf_onehot_fixed,
                            sam_masks=sam_masks, sam_match=sam_match,
                            budget=build_budget(cfg, proposal_clip.patch_size))
    if d.get("passes"):
        passes = [QueryPass(list(p.queries), list(p.label_ids), p.get("background_words"), p.get("prompts"))
                  for p in d.passes]
    else:
        queries = list(d.queries)
        if not queries:
            raise CarError(f"dataset '{d.name}' defines no queries (dataset.queries is empty).")
        passes = [QueryPass(queries, list(range(1, len(queries) + 1)))]
    return SemanticCaR(build_car(cfg, proposal_clip, classifier_clip), passes, build_crf(cfg),
                       bg_factor=cfg.car.crf.bg_factor, background=predicts_background(cfg),
                       oracle_queries=bool(cfg.car.get("oracle_queries", False)),
                       sam_masks=sam_masks, sam_match=sam_match, budget=build_budget(cfg, proposal_clip.patch_size))


def predicts_background(cfg: DictConfig) -> bool:
    """Whether the run's label maps can hold the background class: CaR keeps its CRF background
    channel unless dataset.bg_protocol=standard; a peer queries background only when the dataset
    scores it (bg_protocol=null, car/methods/peers/build.py)."""
    protocol = cfg.dataset.get("bg_protocol")
    if (cfg.method.name if "method" in cfg else "car") == "car":
        return protocol != "standard"
    return protocol is None


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
