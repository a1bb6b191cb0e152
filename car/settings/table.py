"""The settings table: one row per config key with what it may hold and what it means, and
`problems(cfg)`, one sentence per bad setting (car/settings/__init__.py's `validate` raises the first)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from car.errors import CarError
from car.settings.enums import (
    ATTENTION_KINDS,
    AVERAGE_RULES,
    BG_PROTOCOLS,
    CAR_PRECISIONS,
    DAVIS_TASKS,
    EXPRESSION_SETS,
    GT_OVERLAP,
    METHODS,
    ON_BAD_SAMPLE,
    POSTPROCESS,
    PRECISIONS,
    PROMPT_ORDER,
    SAM_VARIANTS,
    SPLIT_BY,
    TASKS,
    UNITS,
    VIDEO_EXPRESSIONS,
    WEIGHTINGS,
)

SEED_MAX = 2**32 - 1  # Lightning's seed_everything takes an unsigned 32-bit seed


class SettingsError(CarError):
    """A config value outside what the settings table allows."""


@dataclass(frozen=True)
class Rule:
    """One row of the table. kind: number | integer | choice | flag | subset | templates | strings."""

    key: str
    kind: str
    description: str
    low: float | None = None  # number / integer lower bound
    high: float | None = None  # number / integer upper bound
    low_open: bool = False  # number: low itself is excluded
    nullable: bool = False  # null is also allowed
    choices: tuple = ()  # choice / subset
    optional: bool = False  # checked only where the composed config has the key

    @property
    def allowed(self) -> str:
        """What the key may hold, as the end of "it must be ..."."""
        if self.kind == "number":
            if self.high is None:
                text = f"a number {'>' if self.low_open else '>='} {_num(self.low)}"
            else:
                text = f"a number from {_num(self.low)} to {_num(self.high)}"
        elif self.kind == "integer":
            text = f"an integer >= {_num(self.low)}" if self.high is None else \
                f"an integer from {_num(self.low)} to {_num(self.high)}"
        elif self.kind == "flag":
            text = "true or false"
        elif self.kind == "choice":
            return "one of: " + ", ".join("null" if c is None else c for c in self.choices)
        elif self.kind == "subset":
            text = "a list of distinct items from: " + ", ".join(self.choices)
        elif self.kind == "templates":
            text = "a list of strings, each containing {}"
        else:
            text = "a list of strings"
        return text + (" or null" if self.nullable else "")

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.nullable or (self.kind == "choice" and None in self.choices)
        if self.kind == "flag":
            return isinstance(value, bool)
        if self.kind == "choice":
            return isinstance(value, str) and value in self.choices
        if self.kind in ("number", "integer"):
            kinds = (int, float) if self.kind == "number" else (int,)
            if isinstance(value, bool) or not isinstance(value, kinds) or value != value:
                return False
            above = value > self.low if self.low_open else value >= self.low
            return above and (self.high is None or value <= self.high)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return False
        if self.kind == "subset":
            return set(value) <= set(self.choices) and len(set(value)) == len(value)
        return self.kind == "strings" or all("{}" in v for v in value)


def number(key, description, low=0.0, high=None, low_open=False, **kw) -> Rule:
    return Rule(key, "number", description, low=low, high=high, low_open=low_open, **kw)


def fraction(key, description, **kw) -> Rule:
    return number(key, description, 0.0, 1.0, **kw)


def positive(key, description, **kw) -> Rule:
    return number(key, description, 0.0, low_open=True, **kw)


def integer(key, description, low=1, high=None, **kw) -> Rule:
    return Rule(key, "integer", description, low=low, high=high, **kw)


def choice(key, description, *choices, **kw) -> Rule:
    return Rule(key, "choice", description, choices=choices, **kw)


def flag(key, description, **kw) -> Rule:
    return Rule(key, "flag", description, **kw)


RULES: tuple[Rule, ...] = (
    # CaR (conf/car/default.yaml; the dataset configs set the paper's per-dataset values)
    fraction("car.eta", "η: threshold that binarises a proposal map to draw its visual prompt"),
    fraction("car.theta", "θ: a query survives a step only if its classifier score is above θ"),
    fraction("car.lambda", "λ: box threshold of the attention-affinity refinement of the proposals"),
    Rule("car.prompts", "subset", "visual prompts for the classifier, applied in the order listed here",
         choices=PROMPT_ORDER),
    integer("car.max_iterations", "recurrence steps at most; null: until no query is pruned", nullable=True),
    flag("car.oracle_queries", "diagnostic: query each image with its ground-truth classes only"),
    integer("car.affinity_layers", "last blocks whose attention forms the affinity"),
    choice("car.precision", "bf16/fp16: autocast of both CLIPs; fp16_weights: both CLIPs' weights and activations "
           "in float16 (the official CUDA runs, quirk Q32)", *CAR_PRECISIONS),
    integer("car.chunk_size", "queries per batched gradCAM pass (memory only)"),
    integer("car.classifier_batch_size", "prompted images per classifier forward (memory only)"),
    integer("car.max_pixels", "pixel budget: larger images run shrunk (aspect kept) and are scored at full size"),
    flag("car.resize_large", "shrink images above car.max_pixels; false: such an image is an error (or a skip)"),
    Rule("car.background_words", "strings", "background words competing in the gradCAM softmax"),
    Rule("car.templates", "templates", "classifier text templates; [] = the single origami template"),
    flag("car.crf.enabled", "refine the final masks with a dense CRF"),
    integer("car.crf.iterations", "mean-field iterations of the CRF"),
    positive("car.crf.gaussian_sxy", "spatial scale of the CRF's smoothness kernel"),
    positive("car.crf.gaussian_compat", "weight of the CRF's smoothness kernel"),
    positive("car.crf.bilateral_sxy", "spatial scale of the CRF's appearance kernel"),
    positive("car.crf.bilateral_srgb", "colour scale of the CRF's appearance kernel"),
    positive("car.crf.bilateral_compat", "weight of the CRF's appearance kernel"),
    positive("car.crf.bg_factor", "β: exponent applied to the background probability before the CRF"),
    choice("car.crf.image", "image given to the CRF: the official BGR-minus-mean uint8 cast (Q18) or RGB",
           "official_wrapped", "rgb"),
    # quirks of the official code (CAR_SPEC §10); car=clean selects the corrected behaviour of each
    choice("car.quirks.cam_text_after_first", "Q5: gradCAM text from step 2 on", "origami", "raw"),
    choice("car.quirks.box_clamp", "Q8: box clamping that leaves out the last grid row and column",
           "official", "correct"),
    flag("car.quirks.classifier_skip_last_block", "Q1: classifier reads CLS before the last block"),
    flag("car.quirks.posemb_fp16_round", "Q3: interpolated positional table rounded to fp16"),
    choice("car.quirks.gray_weights", "Q11: grey prompt computed with BGR weights on RGB", "official", "rgb"),
    flag("car.quirks.legacy_unfiltered_templates", "Q15: classifier texts not pruned (2024 revision)"),
    choice("car.quirks.refer_text_filter", "Q35: referring classifier texts from step 2 on filtered as characters",
           "official_chars", "correct"),
    flag("car.quirks.crf_onehot_fixed", "Q19: false drops empty CRF masks of referring runs and shifts the rest"),
    choice("car.quirks.zero_step", "Q17: what a step does when every proposal map is zero",
           "official", "correct", optional=True),
    # the run
    integer("seed", "seed of every random generator", low=0, high=SEED_MAX),
    integer("num_workers", "DataLoader worker processes", low=0),
    integer("crf_workers", "processes running the CRF alongside the CLIP work; 0: in the main process", low=0),
    integer("num_overlays", "overlay PNGs written for the first N images", low=0),
    flag("save_predictions", "store per-image predictions so that a rerun in the same run dir resumes"),
    choice("on_bad_sample", "a missing or broken sample stops the run or is skipped and listed", *ON_BAD_SAMPLE),
    flag("verbose", "also print the libraries' INFO lines, tips and warnings (Lightning, open_clip)"),
    choice("method.name", "segmentation method (conf/method/)", *METHODS),
    choice("postprocess.name", "refinement of CaR's final masks (conf/postprocess/)", *POSTPROCESS),
    # the dataset (conf/dataset/)
    integer("dataset.limit", "evaluate only the first N images; null: all", nullable=True),
    choice("dataset.task", "kind of dataset", *TASKS, optional=True),
    integer("dataset.ignore_index", "label of unlabelled pixels (255; 65535 for ADE-847 and Context-459)",
            low=0, optional=True),
    choice("dataset.bg_protocol", "null: background is a class; car | standard: the two protocols without it",
           *BG_PROTOCOLS, optional=True),
    choice("dataset.average", "classes the headline mIoU averages over", *AVERAGE_RULES,
           optional=True),
    choice("dataset.loader.unit", "referring: one run per object (official) or per sentence",
           *UNITS, optional=True),
    choice("dataset.loader.gt_overlap", "referring (Q28): ground truth where exactly one polygon or any covers",
           *GT_OVERLAP, optional=True),
    choice("dataset.loader.split_by", "referring: split family", *SPLIT_BY, optional=True),
    choice("dataset.weighting", "referring: each unit counts once in the scores, or once per sentence",
           *WEIGHTINGS, optional=True),
    # video datasets (conf/dataset/shapes_video.yaml, ref_davis17.yaml; car/methods/car/video.py)
    choice("dataset.video.expressions", "video: all the clip's expressions compete in one CaR run per frame, or one "
           "run per expression", *VIDEO_EXPRESSIONS, optional=True),
    choice("dataset.video.protocol", "video: the DAVIS task the predictions are scored with", *DAVIS_TASKS,
           optional=True),
    integer("dataset.video.max_objects", "video: predicted object ids at most (the DAVIS toolkit's 20)", high=255,
            optional=True),
    flag("dataset.video.write_ground_truth", "video: also write the ground truth as a DAVIS tree (generated datasets)",
         optional=True),
    Rule("dataset.loader.expression_sets", "subset", "video: the expression sets to run, each scored separately",
         choices=EXPRESSION_SETS, optional=True),
    integer("dataset.loader.num_videos", "shapes_video: clips generated", optional=True),
    integer("dataset.loader.num_frames", "shapes_video: frames per clip", optional=True),
    # peer methods (conf/method/<peer>.yaml)
    choice("method.precision", "peer methods: autocast of the CLIP", *PRECISIONS, optional=True),
    choice("method.last_block.attention", "peer methods: attention of the last visual block",
           *ATTENTION_KINDS, optional=True),
    flag("method.last_block.residual", "peer methods: keep the last block's residual connection", optional=True),
    flag("method.last_block.ffn", "peer methods: keep the last block's FFN", optional=True),
    choice("method.pos_interpolation", "peer methods: resizing of the positional table",
           "bilinear", "bicubic", optional=True),
    flag("method.pamr.enabled", "peer methods: PAMR refinement", optional=True),
    integer("method.pamr.iterations", "peer methods: PAMR iterations", optional=True),
    integer("method.input.short_side", "peer methods: short side of the resized input (for a 224-px model)",
            optional=True),
    integer("method.input.max_long_side", "peer methods: longest side of the resized input (for a 224-px model)",
            optional=True),
    fraction("method.bg_thresh", "groupvit: a pixel whose best class score is below it is background "
             "(datasets that score background)", nullable=True, optional=True),
    integer("method.top_k", "groupvit: classes kept per window from its whole-window embedding", optional=True),
    positive("method.logit_scale_max", "groupvit: clamp of the learnt logit scale", optional=True),
    # SAM (conf/postprocess/sam*.yaml)
    choice("postprocess.variant", "postprocess=sam: HQ-SAM or plain SAM", *SAM_VARIANTS, optional=True),
    fraction("postprocess.iom_thres", "postprocess=sam: intersection-over-minimum of a matching SAM mask",
             optional=True),
    fraction("postprocess.min_pred_threshold", "postprocess=sam: mask probability threshold", optional=True),
    fraction("postprocess.matching_thresh", "postprocess=sam: IoU needed to replace a CaR mask", optional=True),
    flag("postprocess.cache", "postprocess=sam: cache SAM masks on disk", optional=True),
    integer("postprocess.generator.points_per_side", "postprocess=sam: generator's points per side", optional=True),
)
# No keys other than the table's may appear under these.
CLOSED = ("car.quirks", "car.crf")

ABSENT, _MISSING = object(), object()


def _num(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


def fmt(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def lookup(cfg: DictConfig, key: str) -> Any:
    try:
        value = OmegaConf.select(cfg, key, default=ABSENT, throw_on_missing=True)
    except MissingMandatoryValue:
        return _MISSING
    except OmegaConfBaseException as err:
        reason = str(err).splitlines()[0].rstrip(".")
        raise SettingsError(f"{key} cannot be resolved ({reason}).") from None
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=True)
    return value


def problems(cfg: DictConfig) -> list[str]:
    """One sentence per bad setting, in table order (empty when everything is allowed)."""
    found = []
    for rule in RULES:
        try:
            value = lookup(cfg, rule.key)
        except SettingsError as err:
            found.append(str(err))
            continue
        if value is ABSENT:
            if not rule.optional:
                found.append(f"{rule.key} is missing; it must be {rule.allowed}.")
        elif value is _MISSING:
            found.append(f"{rule.key} has no value (???); it must be {rule.allowed}.")
        elif not rule.accepts(value):
            allowed = f"choose {rule.allowed}" if rule.kind == "choice" else f"it must be {rule.allowed}"
            found.append(f"{rule.key}={fmt(value)} is not allowed; {allowed}.")
    for parent in CLOSED:
        node = OmegaConf.select(cfg, parent, default=None)
        known = [r.key.rsplit(".", 1)[1] for r in RULES if r.key.rsplit(".", 1)[0] == parent]
        for name in (node.keys() if isinstance(node, DictConfig) else ()):
            if name not in known:
                found.append(f"{parent}.{name} is not a known setting; the keys of {parent} are: "
                             f"{', '.join(known)}.")
    return found
