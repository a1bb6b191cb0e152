"""CarSegmenter: CaR built from a composed config, called with an image (or a video) and phrases."""

from __future__ import annotations

import copy
import time
import warnings

from omegaconf import DictConfig, OmegaConf

from car.api.images import Segmentation, clean_phrases, read_image, source_name, trace_records
from car.api.profiles import DEFAULT_PROFILE, check_config, compose_profile
from car.api.video import segment_video
from car.clip.context import overlong_phrases
from car.clip.device import resolve_device
from car.errors import CarError


class CarSegmenter:
    """CaR built from a composed config; call it with an image and a list of phrases.

    `clips`: already loaded (proposal, classifier) CLIPs to reuse (see `with_overrides`); `profile`,
    `backbone`, `overrides`, `weights`: what `from_profile` composed `cfg` from.
    """

    def __init__(self, cfg: DictConfig, device: str | None = None, clips=None, profile: str | None = None,
                 backbone: str | None = None, overrides=(), weights: str | None = None):
        import torch

        from car.run.build import build_segmenter, load_backbones

        self.cfg = cfg
        self.validated = check_config(cfg)  # the typed settings the builders take
        self.profile, self.backbone_name, self.weights = profile or cfg.dataset.name, backbone, weights
        self.overrides = tuple(str(o) for o in overrides)
        self.device = resolve_device(device)  # an unknown device or cuda without a GPU: one sentence, now
        start = time.perf_counter()
        if clips is None:
            torch.manual_seed(self.validated.run.seed)  # random-init backbones (pretrained=null) as evaluate.py does
            clips = load_backbones(self.validated, self.device)
        self.clips = clips
        self.segmenter = build_segmenter(self.validated, *clips)
        for model in self.segmenter.models:  # SAM's (postprocess=sam); the CLIPs are on the device already
            model.to(self.device)
        self.load_seconds = time.perf_counter() - start

    @classmethod
    def from_profile(cls, profile: str = DEFAULT_PROFILE, backbone: str | None = None, overrides=(),
                     weights: str | None = None, device: str | None = None) -> CarSegmenter:
        """`profile`: a dataset config name (voc, coco_object, context59, ..., shapes); `backbone`: a
        conf/backbone name (default: the profile's); `overrides`: Hydra overrides (car.theta=0.5,
        car.crf.enabled=false, postprocess=sam ...); `weights`: see `compose_profile`."""
        cfg = compose_profile(profile, backbone, overrides, weights)
        return cls(cfg, device, profile=profile, backbone=backbone, overrides=overrides, weights=weights)

    def with_overrides(self, extra) -> CarSegmenter:
        """The same profile with more overrides (θ, η, λ, CRF, SAM ...), reusing the loaded CLIPs; the
        backbone section must stay the same."""
        overrides = list(self.overrides) + [str(o) for o in extra]
        cfg = compose_profile(self.profile, self.backbone_name, overrides, self.weights)
        ours = OmegaConf.to_container(self.cfg.backbone, resolve=True)
        if OmegaConf.to_container(cfg.backbone, resolve=True) != ours:
            raise CarError("with_overrides cannot change the backbone; build a new CarSegmenter for that.")
        return CarSegmenter(cfg, self.device, clips=self.clips, profile=self.profile, backbone=self.backbone_name,
                            overrides=overrides, weights=self.weights)

    def settings(self) -> dict:
        """What a result file records about how it was made."""
        c = self.validated.car
        return {"profile": self.cfg.dataset.name, "backbone": OmegaConf.to_container(self.cfg.backbone, resolve=True),
                **c.thresholds.as_dict(), "prompts": list(c.prompts), "background_words": list(c.background_words),
                "crf": c.crf.enabled, "postprocess": self.validated.postprocess, "max_pixels": c.max_pixels,
                "overrides": list(self.overrides), "device": str(self.device)}

    def __call__(self, image, texts) -> Segmentation:
        from car.methods.car.segmenter import QueryPass

        start = time.perf_counter()
        phrases = clean_phrases(texts)
        notes = self.phrase_notes(phrases)
        for note in notes:
            warnings.warn(note, stacklevel=2)
        rgb = read_image(image)
        read = time.perf_counter()
        segmenter = copy.copy(self.segmenter)  # the built one, with the phrases as its single query pass
        segmenter.passes = [QueryPass(phrases, list(range(1, len(phrases) + 1)))]
        proposals, info = segmenter.propose({"image": rgb, "image_id": source_name(image)}, keep_results=True)
        car = time.perf_counter()
        label_map = segmenter.finish(rgb, proposals)  # [H, W] at the image's own size
        end = time.perf_counter()
        result = info["results"][0]
        scores: list[float | None] = [None] * len(phrases)
        for j, i in enumerate(result.live):
            scores[i] = round(float(result.scores[j]), 6)
        timings = {"read": read - start, "car": car - read, "post": end - car, "total": end - start}
        resized = {k: info[k] for k in ("resized_from", "resized_to") if k in info}
        return Segmentation(rgb, phrases, label_map, scores, trace_records(result, phrases),
                            {k: round(v, 4) for k, v in timings.items()}, resized, notes)

    def phrase_notes(self, phrases: list[str]) -> list[str]:
        """One sentence per phrase longer than the CLIPs' text context (they read only its start)."""
        notes = {note: None for clip in self.clips for note in overlong_phrases(clip.tokenizer, phrases)}
        return list(notes)

    def video(self, source, texts, fps: float | None = None, max_frames: int | None = None):
        """CaR on every frame of a video file, a folder of frames or a list of frames, the phrases
        embedded once -> car.api.video.VideoSegmentation (per-frame results, fps, label_maps [T, H, W])."""
        return segment_video(self, source, texts, fps, max_frames)
