"""Build a peer segmenter from the validated settings and its `method` block (conf/method/<name>.yaml)."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from car.clip.load import ClipModel
from car.errors import CarError
from car.methods.peers.features import LastBlock
from car.methods.peers.groupvit import GroupViTSegmenter, groupvit_classes, load_groupvit
from car.methods.peers.segmenter import Decision, InputGeometry, PeerSegmenter, Refinement
from car.methods.peers.text import class_queries, resolve_templates
from car.settings import Settings


def predicts_background(settings: Settings) -> bool:
    """A peer queries background only when the dataset scores it (bg_protocol=null)."""
    return settings.dataset.bg_protocol is None


def scaled_geometry(method: DictConfig, image_size: int) -> InputGeometry:
    """The method's pixel sizes, given for a `sizes_for_image_size`-px backbone, for this backbone."""
    spec = method.input
    scale = image_size / float(spec.sizes_for_image_size)
    slide = spec.get("slide")
    crop = stride = None
    if slide:
        crop, stride = max(1, round(slide.crop * scale)), max(1, round(slide.stride * scale))
    return InputGeometry(short_side=max(1, round(spec.short_side * scale)),
                         max_long_side=max(1, round(spec.max_long_side * scale)), crop=crop, stride=stride)


def build_peer_segmenter(settings: Settings, proposal_clip: ClipModel, classifier_clip: ClipModel | None = None):
    """The segmenter of `settings.method` on the proposal CLIP (peers use a single CLIP)."""
    m, d = settings.config.method, settings.config.dataset
    if settings.dataset.task != "semantic":
        raise CarError(f"method={m.name} segments semantic datasets only; dataset '{d.name}' is "
                       f"{settings.dataset.task}.")
    if settings.postprocess != "none":
        raise CarError(f"postprocess={settings.postprocess} refines CaR's masks only; run method={m.name} with "
                       f"postprocess=none (PAMR is method.pamr.enabled).")
    if m.name == "groupvit":
        return build_groupvit(settings)
    classes = class_queries(d.name, list(d.class_names), m.class_names.get("dir"),
                            list(m.class_names.get("background_words") or []),
                            query_background=predicts_background(settings))
    last = LastBlock(m.last_block.attention, bool(m.last_block.residual), bool(m.last_block.ffn),
                     m.last_block.get("gaussian_std"))
    refinement = Refinement(int(m.pamr.iterations), tuple(m.pamr.dilations)) if m.pamr.enabled else Refinement()
    decision = Decision(float(m.logit_scale), float(m.prob_threshold or 0.0),
                        None if m.area_threshold is None else float(m.area_threshold))
    return PeerSegmenter(m.name, proposal_clip, last, classes, resolve_templates(m.templates),
                         scaled_geometry(m, proposal_clip.image_size), decision, refinement,
                         pos_mode=m.pos_interpolation, precision=m.precision,
                         text_cache=settings.config.paths.get("cache_dir"))


def build_groupvit(settings: Settings, device: str = "cpu") -> GroupViTSegmenter:
    """GroupViT (conf/method/groupvit.yaml) with its own model; the backbone group is not used."""
    m, d = settings.config.method, settings.config.dataset
    config = m.model.get("config")
    overrides = OmegaConf.to_container(config, resolve=True) if config is not None else {}
    model = load_groupvit(m.model.get("pretrained"), overrides, device)
    names = m.get("class_names")
    classes = groupvit_classes(d.name, list(d.class_names), None if names is None else list(names),
                               with_background=predicts_background(settings))
    geometry = scaled_geometry(m, int(model.config.vision_config.image_size))
    return GroupViTSegmenter(model, classes, resolve_templates(m.templates), geometry,
                             None if m.get("bg_thresh") is None else float(m.bg_thresh), int(m.top_k),
                             float(m.logit_scale_max), precision=m.precision)


def run_notes(settings: Settings, segmenter: PeerSegmenter | GroupViTSegmenter) -> dict:
    """What metrics.json records about a peer run beyond CaR's fields."""
    return {"peer": {"method": segmenter.name, "class_names_source": segmenter.classes.source,
                     "num_queries": len(segmenter.classes.queries), "geometry": vars(segmenter.geometry).copy(),
                     "pamr": vars(segmenter.refinement).copy() if segmenter.refinement.iterations else None,
                     "method_config": OmegaConf.to_container(settings.config.method, resolve=True)}}
