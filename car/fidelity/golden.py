"""Golden cases: outputs of the official CaR code on random weights, and our CaR set up like it.

The files live in `../shared/golden/` next to a developer's checkout (not in a user's clone):
one `.npz` per case with every stage of the official run, and `make_weights.py`, which draws
the random ViT-B/16 weights both CLIPs used. Here:

* `golden_dir()` finds the folder (or None); `GoldenCase` reads one case and names its runs;
* `golden_weights()` writes the weights once as a user's OpenAI-format `.pt` file;
* `build_case()` composes OUR Hydra config for the case (the dataset profile the official run
  used, `backbone=vitb16` pointed at that file) and builds our segmenter from it, so the
  comparison also checks our configs' thresholds, prompts, templates and word lists.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from car.config import REPO_ROOT
from car.settings import Thresholds

GOLDEN_ENV = "CAR_GOLDEN_DIR"
CASES = ("c1_032_default", "c2_032_conf017", "c3_033_vocprompts", "c4_042_coco", "r1_refcoco_ref0_3sent",
         "x1_context_663")
WEIGHTS_TENSOR_SHA256 = "d1c259226c802efd4d0b0954d94665dea26ee41f078dacdc906c6fc75a299666"

# Our dataset profile for each official config, and the overrides the case itself made.
PROFILES = {"voc.yaml": "voc", "coco.yaml": "coco_object", "refcoco.yaml": "refcoco",
            "pascal_context.yaml": "context60"}


def golden_dir() -> Path | None:
    """`$CAR_GOLDEN_DIR`, else `../shared/golden` beside the repository; None if absent."""
    path = Path(os.environ.get(GOLDEN_ENV, REPO_ROOT.parent / "shared" / "golden"))
    return path if (path / "make_weights.py").is_file() and (path / f"{CASES[0]}.npz").is_file() else None


@dataclass
class Run:
    """One CaR run inside a case: its key prefix and how it was driven."""

    name: str  # "main" (c1-c4), "refer" (r1), "thing" / "stuff" (x1)
    prefix: str  # key prefix in the npz: "", "refer_", "thing_", "stuff_"
    referring: bool = False


class GoldenCase:
    """One golden `.npz` (numbers only; strings are numpy unicode arrays)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.name = self.path.stem
        with np.load(self.path, allow_pickle=False) as data:
            self.data = {k: data[k] for k in data.files}
        self.meta = json.loads(str(self.data["meta_json"]))

    def __getitem__(self, key: str) -> np.ndarray:
        return self.data[key]

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def strings(self, key: str) -> list[str]:
        return [str(s) for s in np.asarray(self.data[key]).reshape(-1)]

    @property
    def kind(self) -> str:
        """"semantic" (c1-c4), "referring" (r1) or "context" (x1)."""
        return {"refer": "referring", "context": "context"}.get(self.meta.get("mode"), "semantic")

    @property
    def runs(self) -> list[Run]:
        if self.kind == "referring":
            return [Run("refer", "refer_", referring=True)]
        if self.kind == "context":
            return [Run("thing", "thing_"), Run("stuff", "stuff_")]
        return [Run("main", "")]

    def num_steps(self, run: Run) -> int:
        return int(self.data[f"{run.prefix}num_steps"])

    def queries(self, run: Run) -> list[str]:
        """The query strings of a run, as the official code's label space holds them."""
        key = {"": "classes", "refer_": "refer_text"}.get(run.prefix, f"{run.prefix}text")
        return self.strings(key)

    def background_words(self, run: Run) -> list[str]:
        return self.strings(f"{run.prefix}bg_cls") if run.prefix else list(self.meta["bg_cls"])

    def background_features(self, run: Run) -> np.ndarray:
        return self.data[f"{run.prefix}bg_text_features" if run.prefix else "clipcam_bg_text_features"]

    def prompt_types(self, run: Run) -> list[str]:
        return self.strings(f"{run.prefix}visual_prompt_type") if run.prefix else list(self.meta["visual_prompt_type"])

    def bg_factor(self, run: Run) -> float:
        return float(self.data["thr_stuff_bg_factor" if run.name == "stuff" else "thr_bg_factor"])

    def thresholds(self) -> Thresholds:
        """θ, λ, η of the official run."""
        return Thresholds(eta=float(self["thr_mask_threshold"]), theta=float(self["thr_confidence_threshold"]),
                          lam=float(self["thr_clipes_threshold"]))

    def label_ids(self, run: Run) -> list[int]:
        if run.prefix in ("thing_", "stuff_"):
            return [int(i) + 1 for i in self.data[f"{run.prefix}class_id"]]
        return list(range(1, len(self.queries(run)) + 1))


def load_cases(root: Path, names=CASES) -> list[GoldenCase]:
    return [GoldenCase(root / f"{name}.npz") for name in names]


def golden_weights(root: Path, cache: Path) -> Path:
    """The golden ViT-B/16 weights as an OpenAI-format `.pt` under `cache`, written once (about 4 s,
    300 MB) by the folder's own `make_weights.py`; checked by its torch-independent digest."""
    path = Path(cache) / "golden_vitb16_seed2.pt"
    if path.is_file():
        return path
    import importlib.util

    spec = importlib.util.spec_from_file_location("golden_make_weights", root / "make_weights.py")
    make_weights = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_weights)
    arrays = make_weights.generate()
    digest = make_weights.tensor_sha256(arrays)
    if digest != WEIGHTS_TENSOR_SHA256:
        raise RuntimeError(f"make_weights.py drew other weights (tensor sha256 {digest[:12]}...)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(make_weights.serialize(arrays))
    os.replace(tmp, path)  # atomic: parallel test workers may both write it
    return path


def case_config(case: GoldenCase, weights: Path, extra=()):
    """Our composed config for the case: the official run's dataset profile, both CLIPs = the
    golden file (the official runs used this one ViT-B/16 for both). Text embeddings are cached
    beside the weights, so the cases share the class names and templates they have in common.
    `extra`: more overrides (e.g. car.precision=fp16_weights for the device check)."""
    from car.config import compose

    profile = PROFILES[Path(case.meta["config"]).name]
    overrides = [f"dataset={profile}", "backbone=vitb16", f"backbone.proposal.pretrained={weights}",
                 f"backbone.classifier.pretrained={weights}", f"paths.cache_dir={weights.parent / 'cache'}",
                 "logger=none"]
    if case.name.startswith("c2"):
        overrides.append(f"car.theta={case.thresholds().theta}")  # c2 overrides θ to 0.17
    cfg = compose(overrides + list(extra), output_dir=str(weights.parent / "unused_run_dir"))
    if case.kind == "semantic":  # the case's own class list, labels 1..N in that order
        OmegaConf.update(cfg, "dataset.queries", case.queries(Run("main", "")), force_add=True)
    return cfg


def golden_clip(weights: str, device: str = "cpu", fp16_weights: bool = False):
    """Our ClipModel from the golden file, through the normal checkpoint path (loaded once per
    device and weight dtype; the file's values are float16, so fp16_weights casts losslessly)."""
    return _golden_clip(str(weights), str(device), bool(fp16_weights))


@lru_cache(maxsize=4)
def _golden_clip(weights: str, device: str, fp16_weights: bool):
    from car.clip.load import load_clip
    from car.clip.precision import to_fp16_weights

    clip = load_clip({"arch": "ViT-B-16", "pretrained": weights, "quick_gelu": True}, device, role="proposal")
    return to_fp16_weights(clip) if fp16_weights else clip


def build_case(case: GoldenCase, weights: Path, device: str = "cpu", precision: str = "fp32"):
    """(config, segmenter) for the case: `build_segmenter` on our composed config, with the golden
    CLIP loaded once per process through `load_clip` (both backbone entries name that file).
    `device`, `precision` (car.precision): where and how CaR runs (the golden runs: CPU, fp32)."""
    from car.methods.car.build import build_segmenter
    from car.settings import validate

    cfg = case_config(case, weights, [f"car.precision={precision}"] if precision != "fp32" else [])
    assert cfg.backbone.proposal == cfg.backbone.classifier
    clip = golden_clip(str(weights), str(device), precision == "fp16_weights")
    return cfg, build_segmenter(validate(cfg), clip, clip)
