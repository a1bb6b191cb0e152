"""Build CaR from the validated settings: its recurrence (proposals, classifier, visual prompt, text),
the dense CRF, the pixel budget and the semantic or referring segmenter around them (CAR_SPEC §1-§7)."""

from __future__ import annotations

from car.clip.load import ClipModel
from car.clip.text import TextEncoder
from car.errors import CarError
from car.methods.car.classifier import MaskClassifier
from car.methods.car.prompts import VisualPrompt
from car.methods.car.proposals import ProposalGenerator
from car.methods.car.recurrence import CaR
from car.methods.car.segmenter import QueryPass, ReferringCaR, SemanticCaR
from car.methods.car.video import VideoCaR
from car.methods.pixel_budget import PixelBudget
from car.postprocess.crf import DenseCRF
from car.postprocess.sam import build_sam
from car.settings import CarSettings, CrfSettings, Settings


def build_car(settings: Settings, proposal_clip: ClipModel, classifier_clip: ClipModel) -> CaR:
    c, q, t = settings.car, settings.car.quirks, settings.car.thresholds
    referring = settings.dataset.referring or settings.dataset.video  # video runs the referring CaR on each frame
    proposals = ProposalGenerator(proposal_clip, lam=t.lam, affinity_layers=c.affinity_layers,
                                  box_clamp=q.box_clamp, posemb_fp16_round=q.posemb_fp16_round,
                                  chunk_size=c.chunk_size)
    classifier = MaskClassifier(classifier_clip, list(c.templates), skip_last_block=q.classifier_skip_last_block,
                                batch_size=c.classifier_batch_size, posemb_fp16_round=q.posemb_fp16_round)
    text_cache = settings.config.paths.get("cache_dir")  # on-disk text embeddings, reused across runs and sweeps
    classifier.text = TextEncoder(classifier_clip, cache_dir=text_cache)
    prompt = VisualPrompt(list(c.prompts), eta=t.eta, gray_weights=q.gray_weights)
    return CaR(proposals, classifier, prompt, TextEncoder(proposal_clip, cache_dir=text_cache), theta=t.theta,
               background_words=list(c.background_words), cam_text_after_first=q.cam_text_after_first,
               max_iterations=c.max_iterations, legacy_unfiltered_templates=q.legacy_unfiltered_templates,
               compete=not referring,
               char_filter_bug=referring and not c.templates and q.refer_text_filter == "official_chars",
               precision=c.precision, zero_step=q.zero_step)


def build_crf(k: CrfSettings) -> DenseCRF | None:
    if not k.enabled:
        return None
    return DenseCRF(iterations=k.iterations, gaussian_sxy=k.gaussian_sxy, gaussian_compat=k.gaussian_compat,
                    bilateral_sxy=k.bilateral_sxy, bilateral_srgb=k.bilateral_srgb,
                    bilateral_compat=k.bilateral_compat, image_mode=k.image)


def build_budget(c: CarSettings, patch_size: int) -> PixelBudget:
    """car.max_pixels / car.resize_large: the largest image CaR runs on at its own size, for a
    proposal CLIP with `patch_size`-px patches (car/methods/pixel_budget.py)."""
    return PixelBudget(c.max_pixels, c.resize_large, patch_size)


def predicts_background(settings: Settings) -> bool:
    """CaR keeps its CRF background channel unless dataset.bg_protocol=standard."""
    return settings.dataset.bg_protocol != "standard"


def build_segmenter(settings: Settings, proposal_clip: ClipModel, classifier_clip: ClipModel):
    """Semantic: queries and label ids from the dataset config (`queries` for ids 1..K, or
    `passes`). Referring: queries are each sample's sentences. Video: each frame's expressions."""
    c, d = settings.car, settings.config.dataset
    if settings.dataset.video:
        if settings.postprocess != "none":
            raise CarError("video datasets run CaR with the dense CRF only (the paper's §4.3: SAM is not involved); "
                           "drop the postprocess override.")
        return VideoCaR(build_car(settings, proposal_clip, classifier_clip), build_crf(c.crf),
                        bg_factor=c.crf.bg_factor, expressions=d.video.expressions,
                        budget=build_budget(c, proposal_clip.patch_size))
    sam_masks, sam_match = build_sam(settings.config)  # (None, None) unless postprocess=sam
    if settings.dataset.referring:
        return ReferringCaR(build_car(settings, proposal_clip, classifier_clip), build_crf(c.crf),
                            bg_factor=c.crf.bg_factor, crf_onehot_fixed=c.quirks.crf_onehot_fixed,
                            sam_masks=sam_masks, sam_match=sam_match, budget=build_budget(c, proposal_clip.patch_size))
    if d.get("passes"):
        passes = [QueryPass(list(p.queries), list(p.label_ids), p.get("background_words"), p.get("prompts"))
                  for p in d.passes]
    else:
        queries = list(d.queries)
        if not queries:
            raise CarError(f"dataset '{d.name}' defines no queries (dataset.queries is empty).")
        passes = [QueryPass(queries, list(range(1, len(queries) + 1)))]
    return SemanticCaR(build_car(settings, proposal_clip, classifier_clip), passes, build_crf(c.crf),
                       bg_factor=c.crf.bg_factor, background=predicts_background(settings),
                       oracle_queries=c.oracle_queries, sam_masks=sam_masks, sam_match=sam_match,
                       budget=build_budget(c, proposal_clip.patch_size))
