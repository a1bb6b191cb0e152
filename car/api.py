"""CaR on your own image: a segmenter built from a profile, called with an image and phrases.

    from car.api import CarSegmenter

    seg = CarSegmenter.from_profile("voc", backbone="vitb16", overrides=["car.theta=0.5"])
    out = seg("photo.jpg", ["Batman", "Superman"])     # a path, a PIL image or an [H, W, 3] array
    out.label_map      # [H, W] int64 at the image's size: 0 = background, k = phrase k (1-based)
    out.masks          # [K, H, W] bool, one per phrase (out.label_map == k)
    out.scores         # final classifier score per phrase, None where the recurrence pruned it
    out.trace          # per step: the live phrases, their scores, which were kept and pruned
    out.timings        # seconds: read, car (the CLIPs), post (CRF / SAM, painting), total
    video = seg.video("clip.mp4", ["circle"])          # a video, a frame folder or a list of frames (car/apps/video.py)

The profile is a dataset config of conf/dataset/ (voc, coco_object, context59, ...: the paper's η,
θ, λ, visual prompts and background words for that kind of picture, and its default backbone) or
`shapes`, the offline default on the embedded tiny CLIP. The config is composed, validated and built
exactly as `evaluate.py` does (car.config.compose, car.settings.validate, car.run.build); the phrases
are one query pass with label ids 1..K. Images above `car.max_pixels` run on a shrunk copy and the
label map comes back at full size (car/methods/pixel_budget.py).
"""

from __future__ import annotations

import copy
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from car.clip.context import overlong_phrases
from car.clip.device import resolve_device
from car.config import CONFIG_DIR, compose
from car.data.images import array_to_rgb, pil_to_rgb, read_image_file
from car.errors import CarError
from car.settings import validate

DEFAULT_PROFILE = "shapes"
MAX_PHRASES = 254  # label ids 1..254 fit a palette PNG next to background 0 (255: VOC's ignore index)


def profiles() -> list[str]:
    """Dataset profiles usable here: the semantic datasets of conf/dataset/ (not the referring or
    video benchmarks such as refcoco, refcocog, ref_davis17 or shapes_video)."""
    return [path.stem for path in sorted((CONFIG_DIR / "dataset").glob("*.yaml")) if _dataset_task(path) == "semantic"]


def _dataset_task(path: Path) -> str:
    """A dataset config's `dataset.task`, following its defaults list (refcocog extends refcoco)."""
    import yaml

    config = yaml.safe_load(path.read_text()) or {}
    task = (config.get("dataset") or {}).get("task")
    parents = [d for d in config.get("defaults") or [] if isinstance(d, str) and d != "_self_"]
    for parent in parents:
        if task is None and (path.parent / f"{parent}.yaml").is_file():
            task = _dataset_task(path.parent / f"{parent}.yaml")
    return task or "semantic"


def backbones() -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / "backbone").glob("*.yaml"))


def compose_profile(profile: str = DEFAULT_PROFILE, backbone: str | None = None, overrides=(),
                    weights: str | None = None) -> DictConfig:
    """The run config of `evaluate.py dataset=<profile> [backbone=<backbone>] <overrides>`, validated.

    `weights`: CLIP weights for both the proposal and the classifier CLIP (a local checkpoint file or
    an open_clip tag such as `openai`); a pair of two architectures takes a tag only (give files with
    backbone.proposal.pretrained=... backbone.classifier.pretrained=...).
    """
    if profile not in profiles():
        raise CarError(f"Unknown profile '{profile}'; choose one of {', '.join(profiles())}.")
    if backbone is not None and backbone not in backbones():
        raise CarError(f"Unknown backbone '{backbone}'; choose one of {', '.join(backbones())}.")
    args = [f"dataset={profile}"] + ([f"backbone={backbone}"] if backbone else []) + [str(o) for o in overrides]
    try:
        cfg = compose(args)
    except Exception as err:  # Hydra's override and composition errors: the first line says what
        raise CarError(f"Cannot compose the config from {' '.join(args)}: {str(err).splitlines()[0]}") from None
    if weights:
        _set_weights(cfg, str(weights))
    return check_config(cfg)


def check_config(cfg: DictConfig) -> DictConfig:
    """car.settings.validate, then what single images need: a semantic profile, CaR, no oracle."""
    validate(cfg)
    if cfg.dataset.get("task", "semantic") != "semantic":
        raise CarError(f"Profile '{cfg.dataset.name}' is a referring profile; use a semantic one "
                       f"({', '.join(profiles())}).")
    if cfg.method.name != "car":
        raise CarError(f"method={cfg.method.name} is a peer method; CarSegmenter runs CaR (method=car).")
    if cfg.car.get("oracle_queries"):
        raise CarError("car.oracle_queries=true needs a ground truth; it cannot segment your own image.")
    return cfg


def _set_weights(cfg: DictConfig, weights: str) -> None:
    is_file = "/" in weights or Path(weights).suffix in (".pt", ".pth", ".bin", ".safetensors", ".ckpt") \
        or Path(weights).expanduser().exists()
    archs = {cfg.backbone.proposal.arch, cfg.backbone.classifier.arch}
    if is_file and len(archs) > 1:
        raise CarError(f"backbone '{cfg.backbone.name}' pairs {' and '.join(sorted(archs))}, so one weights file "
                       f"cannot serve both; give backbone.proposal.pretrained=... and "
                       f"backbone.classifier.pretrained=... overrides instead.")
    value = str(Path(weights).expanduser().resolve()) if is_file else weights
    for role in ("proposal", "classifier"):
        cfg.backbone[role].pretrained = value


def read_image(source) -> np.ndarray:
    """A path, PIL image or array -> RGB uint8 [H, W, 3] through the one image reader
    (car/data/images.py: camera EXIF orientation applied, 16-bit and float scaled, NaN refused)."""
    if isinstance(source, (str, Path)):
        return read_image_file(Path(source).expanduser(), exif=True, fix="give a readable image file")
    if isinstance(source, Image.Image):
        return pil_to_rgb(source, what="The PIL image", exif=True)
    if isinstance(source, np.ndarray):
        return array_to_rgb(source)
    raise CarError(f"An image must be a path, a PIL image or a numpy array, got {type(source).__name__}.")


def clean_phrases(texts) -> list[str]:
    """Phrases stripped, empty ones dropped; a string is one phrase. Refuses an empty list, more than
    MAX_PHRASES, a phrase that is not a string (None would be segmented as the word "None") and the
    same phrase twice (case and spacing aside: CLIP would split one score between the two)."""
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts or [])
    for i, t in enumerate(texts, start=1):
        if not isinstance(t, str):
            raise CarError(f"Phrase {i} is {t!r} ({type(t).__name__}), not a string: give each phrase as text.")
    phrases = [t.strip() for t in texts if t.strip()]
    if not phrases:
        raise CarError("The phrase list is empty: give at least one phrase to segment, e.g. ['cat', 'dog'].")
    if len(phrases) > MAX_PHRASES:
        raise CarError(f"{len(phrases)} phrases given; at most {MAX_PHRASES} fit one label map.")
    seen: dict[str, str] = {}
    for phrase in phrases:
        key = " ".join(phrase.lower().split())
        if key in seen:
            raise CarError(f"Phrase '{phrase}' is given twice (as '{seen[key]}' too): give each phrase once, "
                           f"since CaR would split one score between the copies.")
        seen[key] = phrase
    return phrases


@dataclass
class Segmentation:
    """What CaR found for K phrases on one H x W image."""

    image: np.ndarray  # [H, W, 3] uint8, the image as read (EXIF orientation applied)
    texts: list[str]  # the K phrases; phrase k has label id k + 1
    label_map: np.ndarray  # [H, W] int64: 0 = background, k = texts[k - 1]
    scores: list[float | None]  # final classifier score per phrase; None = pruned by the recurrence
    trace: list[dict]  # per step: live phrases, their scores, kept and pruned phrases
    timings: dict  # seconds: read, car, post, total
    resized: dict = field(default_factory=dict)  # {"resized_from": [H, W], "resized_to": [h, w]} above max_pixels
    notes: list[str] = field(default_factory=list)  # what the caller should know (a phrase cut at CLIP's context)

    @property
    def masks(self) -> np.ndarray:
        """[K, H, W] bool: masks[k] is phrase k's region (label id k + 1)."""
        return self.label_map[None] == np.arange(1, len(self.texts) + 1)[:, None, None]

    def pruned_at(self, k: int) -> int | None:
        """The step (1-based) whose pruning removed phrase k, None if it survived."""
        return next((entry["step"] for entry in self.trace if k in entry["pruned_ids"]), None)

    def phrases(self) -> list[dict]:
        """One record per phrase: label id, final score, pruned step, last score seen, area."""
        counts = np.bincount(self.label_map.ravel(), minlength=len(self.texts) + 1)
        out = []
        for k, text in enumerate(self.texts):
            seen = [e["scores"][e["live_ids"].index(k)] for e in self.trace if k in e["live_ids"] and e["scores"]]
            out.append({"text": text, "label": k + 1, "score": self.scores[k], "kept": self.scores[k] is not None,
                        "pruned_at_step": self.pruned_at(k), "last_score": seen[-1] if seen else None,
                        "pixels": int(counts[k + 1]), "area": float(counts[k + 1] / self.label_map.size)})
        return out

    def to_json(self) -> dict:
        return {"size": list(self.label_map.shape), "texts": list(self.texts), "phrases": self.phrases(),
                "trace": [{k: v for k, v in e.items() if not k.endswith("_ids")} for e in self.trace],
                "timings": dict(self.timings), **self.resized, **({"notes": list(self.notes)} if self.notes else {})}


def trace_records(result, texts: list[str]) -> list[dict]:
    """CarResult.trace -> JSON-ready steps with phrase names (ids kept for lookups)."""
    steps = []
    for n, step in enumerate(result.trace, start=1):
        scores = [round(float(s), 6) for s in np.asarray(step.scores).tolist()]
        kept = set(step.kept)
        pruned = [i for i in step.live if i not in kept] if scores else []
        steps.append({"step": n, "live": [texts[i] for i in step.live], "scores": scores,
                      "kept": [texts[i] for i in step.kept], "pruned": [texts[i] for i in pruned],
                      "zero_maps": bool(step.zero_maps),
                      "live_ids": list(step.live), "pruned_ids": pruned})
    return steps


class CarSegmenter:
    """CaR built from a composed config; call it with an image and a list of phrases.

    `clips`: already loaded (proposal, classifier) CLIPs to reuse (see `with_overrides`); `profile`,
    `backbone`, `overrides`, `weights`: what `from_profile` composed `cfg` from.
    """

    def __init__(self, cfg: DictConfig, device: str | None = None, clips=None, profile: str | None = None,
                 backbone: str | None = None, overrides=(), weights: str | None = None):
        import torch

        from car.run.build import build_segmenter, load_backbones

        self.cfg = check_config(cfg)
        self.profile, self.backbone_name, self.weights = profile or cfg.dataset.name, backbone, weights
        self.overrides = tuple(str(o) for o in overrides)
        self.device = resolve_device(device)  # an unknown device or cuda without a GPU: one sentence, now
        start = time.perf_counter()
        if clips is None:
            torch.manual_seed(int(cfg.seed))  # random-init backbones (pretrained=null) as evaluate.py builds them
            clips = load_backbones(cfg, self.device)
        self.clips = clips
        self.segmenter = build_segmenter(cfg, *clips)
        sam = getattr(self.segmenter, "sam_masks", None)
        if sam is not None:
            sam.sam.to(self.device)
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
        if OmegaConf.to_container(cfg.backbone, resolve=True) != OmegaConf.to_container(self.cfg.backbone, resolve=True):
            raise CarError("with_overrides cannot change the backbone; build a new CarSegmenter for that.")
        return CarSegmenter(cfg, self.device, clips=self.clips, profile=self.profile, backbone=self.backbone_name,
                            overrides=overrides, weights=self.weights)

    def settings(self) -> dict:
        """What a result file records about how it was made."""
        c = self.cfg.car
        post = self.cfg.postprocess.get("name", "none") if "postprocess" in self.cfg else "none"
        return {"profile": self.cfg.dataset.name, "backbone": OmegaConf.to_container(self.cfg.backbone, resolve=True),
                "eta": float(c.eta), "theta": float(c.theta), "lambda": float(c["lambda"]),
                "prompts": list(c.prompts), "background_words": list(c.background_words),
                "crf": bool(c.crf.enabled), "postprocess": post, "max_pixels": int(c.max_pixels),
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
        proposals, info = segmenter.propose({"image": rgb, "image_id": _name(image)}, keep_results=True)
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
        embedded once -> car.apps.video.VideoSegmentation (per-frame results, fps, label_maps [T, H, W])."""
        from car.apps.video import segment_video

        return segment_video(self, source, texts, fps, max_frames)


def _name(image) -> str | None:
    return str(image) if isinstance(image, (str, Path)) else None
