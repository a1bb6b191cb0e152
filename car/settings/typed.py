"""The validated settings as typed, frozen objects: what `car.settings.validate(cfg)` returns and the
builders take. One field per key of the settings table (car/settings/table.py); a key the table marks
optional takes the field's default where the composed config lacks it, so no builder re-defaults it.
Groups the table does not cover (dataset loader and queries, backbone, a peer's method block, SAM's
settings, paths) are read from `config`, the composed config the settings came from."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, get_type_hints

from omegaconf import DictConfig


def key(name: str) -> dict:
    """Field metadata: the config key of a field whose name differs from it (λ: car.lambda)."""
    return {"key": name}


def group(prefix: str) -> dict:
    """Field metadata: a nested settings object whose keys start with `prefix`."""
    return {"prefix": prefix}


@dataclass(frozen=True)
class Thresholds:
    """CaR's three thresholds, the paper's per-dataset values (CAR_SPEC §3-§5)."""

    eta: float  # η: binarises a proposal map to draw its visual prompt
    theta: float  # θ: a query survives a step only if its classifier score is above θ
    lam: float = field(metadata=key("car.lambda"))  # λ: box threshold of the affinity refinement

    def as_dict(self) -> dict[str, float]:
        """{"eta", "theta", "lambda"}: the names of the config and of results files."""
        return {"eta": self.eta, "theta": self.theta, "lambda": self.lam}


THRESHOLD_KEYS = ("car.eta", "car.theta", "car.lambda")  # the order of Thresholds' fields


@dataclass(frozen=True)
class CrfSettings:
    enabled: bool
    iterations: int
    gaussian_sxy: float
    gaussian_compat: float
    bilateral_sxy: float
    bilateral_srgb: float
    bilateral_compat: float
    bg_factor: float
    image: str


@dataclass(frozen=True)
class Quirks:
    cam_text_after_first: str
    box_clamp: str
    classifier_skip_last_block: bool
    posemb_fp16_round: bool
    gray_weights: str
    legacy_unfiltered_templates: bool
    refer_text_filter: str
    crf_onehot_fixed: bool
    zero_step: str = "official"


@dataclass(frozen=True)
class CarSettings:
    thresholds: Thresholds = field(metadata=group("car"))
    prompts: tuple[str, ...]
    max_iterations: int | None
    oracle_queries: bool
    affinity_layers: int
    precision: str
    chunk_size: int
    classifier_batch_size: int
    max_pixels: int
    resize_large: bool
    background_words: tuple[str, ...]
    templates: tuple[str, ...]
    crf: CrfSettings = field(metadata=group("car.crf"))
    quirks: Quirks = field(metadata=group("car.quirks"))


@dataclass(frozen=True)
class RunSettings:
    seed: int
    num_workers: int
    crf_workers: int
    num_overlays: int
    save_predictions: bool
    on_bad_sample: str
    verbose: bool


@dataclass(frozen=True)
class DatasetSettings:
    limit: int | None
    task: str = "semantic"
    ignore_index: int | None = None
    bg_protocol: str | None = None
    average: str | None = None
    unit: str | None = field(default=None, metadata=key("dataset.loader.unit"))
    gt_overlap: str | None = field(default=None, metadata=key("dataset.loader.gt_overlap"))
    split_by: str | None = field(default=None, metadata=key("dataset.loader.split_by"))
    weighting: str = "unit"

    @property
    def referring(self) -> bool:
        return self.task == "referring"

    @property
    def video(self) -> bool:
        """Video datasets (shapes_video, ref_davis17): the referring CaR per frame, the DAVIS measures."""
        return self.task == "video"


@dataclass(frozen=True)
class Settings:
    car: CarSettings = field(metadata=group("car"))
    run: RunSettings = field(metadata=group(""))
    dataset: DatasetSettings = field(metadata=group("dataset"))
    method: str = field(metadata=key("method.name"))
    postprocess: str = field(metadata=key("postprocess.name"))
    config: DictConfig = field(default=None, compare=False, repr=False, metadata={"untyped": True})


def field_keys(cls=Settings, prefix: str = "") -> dict[str, tuple]:
    """{config key: (dataclass, field)} for every typed field below `cls`."""
    out: dict[str, tuple] = {}
    hints = get_type_hints(cls)
    for f in fields(cls):
        if f.metadata.get("untyped"):
            continue
        if is_dataclass(hints[f.name]):
            out.update(field_keys(hints[f.name], f.metadata.get("prefix", prefix)))
        else:
            out[f.metadata.get("key") or (f"{prefix}.{f.name}" if prefix else f.name)] = (cls, f)
    return out


def build(cls, lookup, prefix: str = "", absent: Any = None):
    """`cls` filled from `lookup(key)` (the resolved value, or `absent` where the config lacks it)."""
    hints, values = get_type_hints(cls), {}
    for f in fields(cls):
        if f.metadata.get("untyped"):
            continue
        if is_dataclass(hints[f.name]):
            values[f.name] = build(hints[f.name], lookup, f.metadata.get("prefix", prefix), absent)
            continue
        value = lookup(f.metadata.get("key") or (f"{prefix}.{f.name}" if prefix else f.name))
        if value is absent:
            continue  # an optional key: the field's default
        if hints[f.name] is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # a number key written as 1 is the float 1.0
        values[f.name] = tuple(value) if isinstance(value, list) else value
    return cls(**values)
