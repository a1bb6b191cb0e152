"""metrics.json: the record an evaluation writes and the reports read, typed and versioned.

A record is the run's fields (`RunRecord`: dataset, backbone, counts, timing, the comparison with
the paper, the config) and, at the same level, the scores its task's metric returns from
``compute()`` (`SemanticScores`, `ReferringScores`, `VideoScores`). `TASKS` names each task kind with
its scores type and headline score; a new kind is one more `TaskKind` there, one metric whose
``compute()`` returns its scores, one view in car/reporting/task_views.py and, if its runs write more
than overlays, an entry in car/run/tasks.py.

Versions: 2 is this schema (``"schema_version": 2``); files written before it have no
``schema_version`` and are read as version 1, whose fields are the same. A newer version or an
unknown task is refused by `check_record` in one sentence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

from car.errors import CarError

SCHEMA_VERSION = 2
UNVERSIONED = 1  # metrics.json written before the schema: the same fields, no "schema_version"


class SemanticScores(TypedDict):
    """`SemanticIoU.compute()` (car/metrics/semantic.py): percent scores from the confusion matrix."""

    miou: float  # under the configured rule (average, bg_protocol); NaN -> null in the file
    per_class_iou: dict[str, float | None]  # None: the class is not averaged
    pixel_accuracy: float
    mean_accuracy: float
    average: str  # "gt_present" | "union_present"
    bg_protocol: str  # protocol_name(): with_background, car, standard_no_bg, standard_bg_miss
    num_classes_averaged: int
    all_rules: dict[str, float]  # "<average>/<protocol>" -> mIoU, every rule that applies
    confusion_matrix: list[list[int]]  # [K, K], rows = ground truth


# `precision@0.5` ... are not identifiers: the functional form.
ReferringScores = TypedDict("ReferringScores", {
    "miou": float, "oiou": float, "num_units": int, "num_sentences": int,
    "precision@0.5": float, "precision@0.6": float, "precision@0.7": float, "precision@0.8": float,
    "precision@0.9": float,
    "weighting": str,  # "unit" | "sentence"
    "unit": str,  # "object" | "sentence"
    "unit_note": str,  # what one evaluation unit is and how it counts, in words
    "unit_ious": list[float],  # per unit, in the order scored (percent)
})


class VideoScores(TypedDict):
    """`VideoMeasures.compute()` (car/metrics/video.py): the DAVIS measures in percent, mean over the sets."""

    j_and_f: float
    j_mean: float
    j_recall: float
    j_decay: float
    f_mean: float
    f_recall: float
    f_decay: float
    expression_sets: dict[str, dict[str, Any]]  # set -> the same measures, per_video, per_object
    protocol: str  # "unsupervised" | "semi-supervised"
    num_videos: int


class RunRecord(TypedDict, total=False):
    """The fields every run has, whatever its task (car/reporting/results.py build_metrics)."""

    schema_version: int
    dataset: str
    task: str  # a key of TASKS
    split: str | None
    backbone: dict[str, Any]  # name, proposal, classifier, pretrained
    num_images: int
    skipped: dict[str, Any]  # count, on_bad_sample, samples
    resized: dict[str, Any]  # count, max_pixels, pixel_limit, images
    resumed_images: int
    recomputed_damaged: dict[str, Any]  # count, samples: stored predictions that were damaged and recomputed
    postprocess: dict[str, Any]
    rss_mb_trace: list[tuple[int, float]]
    predictions: dict[str, Any]  # dir, bytes_per_image (with save_predictions)
    timing_s: dict[str, float]  # setup, predict, car, scoring
    published: dict[str, Any] | None
    comparison: dict[str, Any]  # comparable, reason
    mean_steps: float
    elapsed_s: float
    car_s_per_image: float
    versions: dict[str, str | None]
    date: str
    config: dict[str, Any]
    # video runs (car/run/tasks.py)
    num_frames: int
    frames_per_s: float | None
    expressions: str
    davis_results: str  # the DAVIS-layout results folder
    davis_root: str | None  # the ground truth they are scored against
    per_video_frames: dict[str, int]
    unit_note: str  # the protocol in words (the report's score heading)


@dataclass(frozen=True)
class TaskKind:
    name: str
    scores: type  # the TypedDict its metric's compute() returns
    headline: str  # the score a run is summarised by

    @property
    def score_keys(self) -> frozenset[str]:
        return frozenset(self.scores.__annotations__)


TASKS: dict[str, TaskKind] = {kind.name: kind for kind in (
    TaskKind("semantic", SemanticScores, "miou"),
    TaskKind("referring", ReferringScores, "miou"),
    TaskKind("video", VideoScores, "j_and_f"),
)}


def task_of(record: Mapping) -> TaskKind:
    """The task kind of a record (records without `task` are semantic, as before the field existed)."""
    name = record.get("task", "semantic")
    if name not in TASKS:
        raise CarError(f"metrics.json has task '{name}', which this car-bench does not know "
                       f"(known: {', '.join(TASKS)}).")
    return TASKS[name]


def missing_scores(task: str, scores: Mapping) -> list[str]:
    """The score keys of `task` that `scores` lacks (a metric must return all of them)."""
    return sorted(TASKS[task].score_keys - set(scores))


def check_record(record: Mapping, source: str = "metrics.json") -> RunRecord:
    """A record as the reports read it: version checked (unversioned files are version 1), task known,
    its task's headline present. Raises CarError, one sentence, otherwise."""
    version = record.get("schema_version", UNVERSIONED)
    if not isinstance(version, int) or isinstance(version, bool) or not UNVERSIONED <= version <= SCHEMA_VERSION:
        raise CarError(f"{source} has schema_version {version!r}; this car-bench reads versions {UNVERSIONED} to "
                       f"{SCHEMA_VERSION}: report it with the car-bench that wrote it.")
    kind = task_of(record)
    if kind.headline not in record:
        raise CarError(f"{source} has no '{kind.headline}' score: it is not a finished {kind.name} run's record.")
    return RunRecord(**{**record, "schema_version": version})
