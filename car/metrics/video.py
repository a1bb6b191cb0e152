"""Video scores: the DAVIS measures (car/metrics/davis.py) per expression set, and their mean.

Ref-DAVIS17 is scored with the DAVIS-2017 toolkit's **unsupervised** protocol: every frame,
predicted objects matched to ground-truth objects by the Hungarian assignment. Each expression
set (the annotators × first-frame / full-video expressions) is a separate prediction of every
video and is scored on its own; the headline J&F, J and F are the mean over the sets, as the
usual Ref-DAVIS protocol reports them.

`VideoMeasures` follows the other metrics' reset / update / compute:

    update(pred [T, H, W], target [T, H, W], sequence=video_id, expression_set=name)
    compute() -> {"j_and_f", "j_mean", "j_recall", "j_decay", "f_mean", "f_recall", "f_decay"  (percent),
                  "expression_sets": {set: the same keys + "per_video": {video: {"j_and_f", "j", "f"}}
                                      + "per_object": {f"{video}_{id}": {"j", "f"}}},
                  "protocol": "unsupervised", "num_videos": n}

Its state is plain Python (per-sequence results), so it is not summed across DDP ranks: video
runs are single-process (a video is one sample; car/run/build.py refuses trainer=ddp for them).
"""

from __future__ import annotations

import numpy as np

from car.errors import CarError

# the toolkit's global columns -> our metrics.json keys (percent)
GLOBAL_KEYS = {"J&F-Mean": "j_and_f", "J-Mean": "j_mean", "J-Recall": "j_recall", "J-Decay": "j_decay",
               "F-Mean": "f_mean", "F-Recall": "f_recall", "F-Decay": "f_decay"}


def percent(value: float) -> float:
    return 100.0 * float(value)


class VideoMeasures:
    task = "video"  # the metric contract (car/metrics/schema.py): compute() returns VideoScores
    label_names: list[str] = []  # video predictions are object ids, named by each sample's expressions

    def __init__(self, protocol: str = "unsupervised", max_objects: int = 20):
        self.protocol = protocol
        self.max_objects = max_objects
        self.reset()

    def reset(self) -> None:
        self.by_set: dict = {}  # expression set -> DavisMeasures
        self.videos: dict[str, list[str]] = {}  # expression set -> videos processed, in order

    def update(self, pred, target, sequence: str, expression_set: str) -> None:
        from car.metrics.davis import DavisMeasures

        pred = np.asarray(pred.cpu() if hasattr(pred, "cpu") else pred).astype(np.uint8)  # [T, H, W]
        target = np.asarray(target.cpu() if hasattr(target, "cpu") else target).astype(np.uint8)
        if pred.shape != target.shape:
            raise CarError(f"video {sequence} ({expression_set}): prediction {tuple(pred.shape)} and ground truth "
                           f"{tuple(target.shape)} differ in shape.")
        if sequence in self.videos.get(expression_set, []):
            raise CarError(f"video {sequence} appears twice in expression set {expression_set}.")
        if expression_set not in self.by_set:
            self.by_set[expression_set] = DavisMeasures(task=self.protocol, max_objects=self.max_objects)
        self.by_set[expression_set].process(sequence, target, pred)
        self.videos.setdefault(expression_set, []).append(sequence)

    def compute(self) -> dict:
        if not self.by_set:
            raise CarError("no video was scored: the dataset yielded no readable video.")
        sets = {name: set_scores(measures.compute()) for name, measures in self.by_set.items()}
        out = {key: float(np.mean([s[key] for s in sets.values()])) for key in GLOBAL_KEYS.values()}
        out["expression_sets"] = sets
        out["protocol"] = self.protocol
        out["num_videos"] = len({v for videos in self.videos.values() for v in videos})
        return out


def set_scores(computed: dict) -> dict:
    """One expression set's DavisMeasures.compute() (fractions) -> percent, our key names."""
    out = {ours: percent(computed[theirs]) for theirs, ours in GLOBAL_KEYS.items()}
    out["per_video"] = {video: {"j_and_f": percent(v["J&F"]), "j": percent(v["J"]), "f": percent(v["F"])}
                        for video, v in computed["per_sequence"].items()}
    out["per_object"] = {key: {"j": percent(v["J"]), "f": percent(v["F"])} for key, v in computed["per_object"].items()}
    return out
