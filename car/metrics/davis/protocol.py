"""DavisMeasures: the DAVIS-2017 evaluation of whole sequences, unsupervised or semi-supervised.

Per sequence (``process``), as the official toolkit's ``DAVISEvaluation.evaluate`` does:

* the ground-truth objects are ids 1..G with G the highest id in the first ground-truth frame
  (255 = void is not an id; higher ids in later frames are background); the predicted objects are
  ids 1..P with P the highest predicted id; an id with no pixel is an empty mask;
* **unsupervised** (Ref-DAVIS17's protocol): every frame scored, void-aware; at most 20 predicted
  ids; when P < G the missing objects are empty masks; every (predicted, ground-truth) pair gets
  mean-over-frames (J + F) / 2, and ``scipy.optimize.linear_sum_assignment`` assigns predicted to
  ground-truth objects maximising it. As in the toolkit, the matched pairs are taken in the order
  of the predicted ids and named ``<sequence>_1`` .. ``<sequence>_G`` in that order;
* **semi-supervised**: the first and the last frame are not scored (the first is the given one);
  predicted id k is ground-truth object k; no predicted id above G; void is not used (the toolkit
  passes none in this task).

``compute`` averages over all (sequence, object) entries: J-Mean / Recall / Decay, F-Mean /
Recall / Decay, and J&F-Mean = (J-Mean + F-Mean) / 2, as fractions in [0, 1].
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from car.metrics.davis.measures import object_statistics
from car.metrics.davis.pairs import pairwise_scores
from car.settings.enums import DAVIS_TASKS as TASKS

VOID = 255
MAX_PROPOSALS = 20  # the toolkit's limit on predicted ids in the unsupervised task
GLOBAL_KEYS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")


class DavisMeasures:
    """Accumulates DAVIS J and F over sequences; ``compute()`` returns the scores (fractions)."""

    def __init__(self, task: str = "unsupervised", max_objects: int = MAX_PROPOSALS) -> None:
        if task not in TASKS:
            raise ValueError(f"the DAVIS task must be one of {TASKS}, got {task!r}")
        self.task = task
        self.max_objects = int(max_objects)
        self.reset()

    def reset(self) -> None:
        self.sequences: list[str] = []
        self.per_frame: dict[str, dict[str, np.ndarray]] = {}  # "<seq>_<k>" -> {"J": [T], "F": [T]}
        self._objects: list[tuple[str, str]] = []  # (sequence, "<seq>_<k>") in the toolkit's order

    def process(self, sequence: str, gt: np.ndarray, pred: np.ndarray) -> None:
        """Scores one sequence. gt: [T, H, W] uint8 object ids (0 background, 255 void);
        pred: [T, H, W] predicted ids (0 background)."""
        gt, pred = np.asarray(gt), np.asarray(pred)
        if gt.ndim != 3 or gt.shape != pred.shape:
            raise ValueError(f"sequence {sequence}: the ground truth {gt.shape} and the prediction "
                             f"{pred.shape} must both be [frames, height, width] of the same size")
        if sequence in self.sequences:
            raise ValueError(f"sequence {sequence} was already scored")
        void = gt == VOID
        n_gt = int(gt[0][~void[0]].max(initial=0))
        if self.task == "semi-supervised":
            if len(gt) < 3:
                raise ValueError(f"sequence {sequence}: the semi-supervised task scores all frames but the first "
                                 f"and the last, so it needs at least 3 frames, got {len(gt)}")
            gt, pred, void = gt[1:-1], pred[1:-1], None
        n_pred = int(pred.max()) if pred.size else 0
        limit = self.max_objects if self.task == "unsupervised" else n_gt
        if n_pred > limit:
            what = f"at most {limit} predicted ids" if self.task == "unsupervised" else \
                f"no predicted id above the {n_gt} ground-truth objects"
            raise ValueError(f"sequence {sequence}: the prediction has id {n_pred}, but the {self.task} task "
                             f"allows {what}")
        j, f = pairwise_scores(gt, pred, n_gt, max(n_pred, n_gt), void)  # [P, G, T]; void (255) is above every id
        if self.task == "unsupervised":
            rows, cols = linear_sum_assignment(-(j.mean(axis=2) + f.mean(axis=2)) / 2)
        else:
            rows = cols = np.arange(n_gt)
        self.sequences.append(sequence)
        for k, (row, col) in enumerate(zip(rows, cols), start=1):
            name = f"{sequence}_{k}"
            self.per_frame[name] = {"J": j[row, col], "F": f[row, col]}
            self._objects.append((sequence, name))

    def object_scores(self) -> dict[str, dict[str, float]]:
        """"<seq>_<k>" -> J and F mean (``J``, ``F``) with their recall and decay."""
        out = {}
        for _, name in self._objects:
            scores = {}
            for measure in ("J", "F"):
                mean, recall, decay = object_statistics(self.per_frame[name][measure])
                scores.update({measure: mean, f"{measure}-Recall": recall, f"{measure}-Decay": decay})
            out[name] = scores
        return out

    def compute(self) -> dict:
        if not self._objects:
            raise ValueError("no DAVIS object was scored (no sequence processed, or no ground-truth object "
                             "in the first frame of any)")
        per_object = self.object_scores()
        table = np.array([[s["J"], s["J-Recall"], s["J-Decay"], s["F"], s["F-Recall"], s["F-Decay"]]
                          for s in per_object.values()])  # [objects, 6]
        jm, jr, jd, fm, fr, fd = (float(v) for v in table.mean(axis=0))
        scores = dict(zip(GLOBAL_KEYS, ((jm + fm) / 2.0, jm, jr, jd, fm, fr, fd)))
        per_sequence = {}
        for sequence in self.sequences:
            names = [name for seq, name in self._objects if seq == sequence]
            if names:
                jm_seq = float(np.mean([per_object[n]["J"] for n in names]))
                fm_seq = float(np.mean([per_object[n]["F"] for n in names]))
                per_sequence[sequence] = {"J&F": (jm_seq + fm_seq) / 2.0, "J": jm_seq, "F": fm_seq}
        return {**scores, "per_sequence": per_sequence, "per_object": per_object,
                "num_sequences": len(self.sequences), "num_objects": len(per_object)}
