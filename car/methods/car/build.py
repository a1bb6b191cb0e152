"""Build CaR from a run config: its recurrence (proposals, classifier, visual prompt, text), the
dense CRF, the pixel budget and the semantic or referring segmenter around them (CAR_SPEC §1-§7)."""

from __future__ import annotations

from omegaconf import DictConfig

from car.clip.load import ClipModel
from car.clip.text import TextEncoder
from car.errors import CarError
from car.methods.car.classifier import MaskClassifier
from car.methods.car.prompts import VisualPrompt
from car.methods.car.proposals import ProposalGenerator
from car.methods.car.recurrence import CaR
from car.methods.car.segmenter import QueryPass, ReferringCaR, SemanticCaR
from car.methods.car.video import VideoCaR
from car.methods.pixel_budget import DEFAULT_MAX_PIXELS, PixelBudget
from car.metrics.schema import task_of
from car.postprocess.crf import DenseCRF
from car.postprocess.sam import build_sam


def is_referring(cfg: DictConfig) -> bool:
    return task_of(cfg.dataset).name == "referring"


def is_video(cfg: DictConfig) -> bool:
    """Video datasets (shapes_video, ref_davis17): the referring CaR per frame, scored with the DAVIS measures."""
    return task_of(cfg.dataset).name == "video"


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


def predicts_background(cfg: DictConfig) -> bool:
    """CaR keeps its CRF background channel unless dataset.bg_protocol=standard."""
    return cfg.dataset.get("bg_protocol") != "standard"


def build_segmenter(cfg: DictConfig, proposal_clip: ClipModel, classifier_clip: ClipModel):
    """Semantic: queries and label ids from the dataset config (`queries` for ids 1..K, or
    `passes`). Referring: queries are each sample's sentences. Video: each frame's expressions."""
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
