"""Optional SAM refinement of CaR's final masks ("CaR + SAM", CAR_SPEC §7.5).

generator.py: SAM's automatic masks per image (local weights, disk cache).
matching.py:  the rule that swaps a CaR mask for the union of the SAM masks matching it.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from car.postprocess.sam.generator import SamMaskGenerator, load_sam, sam_identity
from car.postprocess.sam.matching import SamMatcher, match_sam_masks

__all__ = ["SamMaskGenerator", "SamMatcher", "build_sam", "match_sam_masks", "sam_record"]


def build_sam(cfg: DictConfig) -> tuple[SamMaskGenerator | None, SamMatcher | None]:
    """(mask generator, matcher) for `postprocess=sam`, (None, None) otherwise."""
    p = cfg.get("postprocess")
    if p is None or p.get("name", "none") != "sam":
        return None, None
    encoder = OmegaConf.to_container(p.encoder, resolve=True)
    sam = load_sam(p.variant, encoder, p.get("checkpoint"), seed=cfg.seed)
    cache_dir = Path(cfg.paths.cache_dir) / "sam" if p.get("cache", True) and cfg.paths.get("cache_dir") else None
    generator = SamMaskGenerator(sam, p.variant, OmegaConf.to_container(p.generator, resolve=True),
                                 sam_identity(p.variant, encoder, p.get("checkpoint"), cfg.seed), cache_dir=cache_dir)
    matcher = SamMatcher(iom_thres=float(p.iom_thres), min_pred_threshold=float(p.min_pred_threshold),
                         matching_thresh=float(p.matching_thresh))
    return generator, matcher


def sam_record(cfg: DictConfig, generator: SamMaskGenerator | None) -> dict | None:
    """What metrics.json says about SAM: variant, weights, generator settings, thresholds, cache use."""
    p = cfg.get("postprocess")
    if generator is None or p is None:
        return None
    return {"variant": p.variant, "model": p.get("model"), "checkpoint": p.get("checkpoint"),
            "weights": sam_identity(p.variant, OmegaConf.to_container(p.encoder), p.get("checkpoint"), cfg.seed),
            "generator": generator.settings, "iom_thres": float(p.iom_thres),
            "min_pred_threshold": float(p.min_pred_threshold), "matching_thresh": float(p.matching_thresh),
            "cache": {"hits": generator.hits, "misses": generator.misses}}
