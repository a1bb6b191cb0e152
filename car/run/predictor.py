"""The predict-only LightningModule: runs CaR on each image and accumulates the dataset metric.

Lightning gives device placement, DDP sharding and progress bars; nothing here trains. The
Trainer must be built with `inference_mode=False` (gradCAM needs autograd). Metrics are read
after `trainer.predict` from `self.metric` (a torchmetrics state, summed across DDP ranks),
not through `self.log`, which predict does not support.

With `crf_workers > 0` the CPU part of each image (dense CRF, label painting) runs in a pool of
worker processes while the CLIP part of the next images proceeds, taking the CRF off the
critical path. The metric is a sum, so the completion order does not change any number.
"""

from __future__ import annotations

import logging
import multiprocessing
import resource
import time
from concurrent.futures import Future, ProcessPoolExecutor

import numpy as np
import pytorch_lightning as pl
import torch
import torchmetrics

from car.methods.segmenter import Segmenter
from car.run.store import DamagedPrediction

log = logging.getLogger(__name__)


def resident_mb() -> float:
    """Current resident set size of this process in MB (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        return 0.0


def _finish(cpu_segmenter, image: np.ndarray, proposals) -> np.ndarray:
    return cpu_segmenter.finish(image, proposals)


STRIP_FRAMES = 6  # frames of a video kept for the report's strip


def sample_id(sample: dict) -> str:
    """An image's id, or a video sample's `<expression set>/<video>` (one item per set and video)."""
    if "image_id" in sample:
        return sample["image_id"]
    return f"{sample['expression_set']}/{sample['video_id']}"


def metric_args(sample: dict) -> dict:
    """What the metric needs beside (pred, target): a referring unit's sentence count (dataset.weighting),
    a video's name and expression set (car/metrics/video.py)."""
    if "sentences" in sample:
        return {"sentences": len(sample["sentences"])}
    if "video_id" in sample:
        return {"sequence": sample["video_id"], "expression_set": sample["expression_set"]}
    return {}


class CarPredictor(pl.LightningModule):
    def __init__(self, segmenter: Segmenter, models: list[torch.nn.Module], metric: torchmetrics.Metric,
                 keep_examples: int = 0, crf_workers: int = 0, store=None, writer=None):
        super().__init__()
        self.segmenter = segmenter
        self.clips = torch.nn.ModuleList(dict.fromkeys(models))  # registered so Lightning moves them
        self.metric = metric  # the task's metric (car/metrics): update per sample, compute() -> scores
        self.keep_examples = keep_examples
        self.crf_workers = crf_workers
        self.store = store  # PredictionStore: finished images are saved and, on resume, reloaded
        self.writer = writer  # video: DavisWriter, each video's label maps in DAVIS layout (car/run/davis_output.py)
        self.skipped: list[dict] = []  # samples replaced by on_bad_sample=skip markers
        self.rss_trace: list[tuple[int, float]] = []  # (images done, resident MB), every 25 images
        self.resumed = 0
        self.damaged: list[dict] = []  # stored predictions that could not be read, recomputed
        self.examples: list[dict] = []  # first images with their predictions, for overlays
        self.per_image: list[dict] = []
        self.seconds = 0.0
        self._pool: ProcessPoolExecutor | None = None
        self._pending: list[tuple[Future, dict]] = []

    def on_predict_start(self) -> None:
        if self.crf_workers > 0:
            self._pool = ProcessPoolExecutor(self.crf_workers, mp_context=multiprocessing.get_context("spawn"))
            self._cpu_segmenter = self.segmenter.cpu_part()

    def predict_step(self, batch: list[dict], batch_idx: int) -> None:
        for sample in batch:
            if sample.get("skipped"):
                self.skipped.append({"index": sample["index"], "error": sample["error"]})
                continue
            if self.store is not None and self.store.has(sample_id(sample)):
                try:
                    pred, info = self.store.load(sample_id(sample))
                except DamagedPrediction as err:  # recomputed below; the new file replaces it
                    log.warning("%s", err)
                    self.damaged.append({"image_id": sample_id(sample), "error": str(err)})
                else:
                    self.resumed += 1
                    self._record(sample, pred, info, save=False)
                    continue
            start = time.perf_counter()
            if self._pool is None:
                pred, info = self.segmenter(sample)  # [H, W] int64 label map or binary mask
                self._record(sample, pred, info)
            else:
                proposals, info = self.segmenter.propose(sample)
                sample = {**sample, "info": info}
                self._pending.append((self._pool.submit(_finish, self._cpu_segmenter, sample["image"], proposals),
                                      sample))
                self._drain(block=False)
            self.seconds += time.perf_counter() - start

    def on_predict_epoch_end(self) -> None:
        if self._pool is not None:
            self._drain(block=True)
            self._pool.shutdown()
            self._pool = None

    def _drain(self, block: bool) -> None:
        """Record finished images in submission order (so outputs do not depend on timing)."""
        while self._pending and (block or self._pending[0][0].done()):
            future, sample = self._pending.pop(0)
            self._record(sample, future.result(), sample["info"])

    def _record(self, sample: dict, pred: np.ndarray, info: dict, save: bool = True) -> None:
        if save and self.store is not None:
            self.store.save(sample_id(sample), pred, info)
        if self.writer is not None:
            self.writer.write(sample, pred)
        target = torch.as_tensor(np.ascontiguousarray(sample["target"])).to(self.device)
        self.metric.update(torch.from_numpy(np.ascontiguousarray(pred)).to(self.device), target, **metric_args(sample))
        resized = {k: info[k] for k in ("resized_from", "resized_to") if k in info}  # above car.max_pixels
        self.per_image.append({"image_id": sample_id(sample), "steps": info["steps"], "kept": info["kept"], **resized})
        if "video_id" in sample:  # video: frames and CaR's time for them (frames/s), the final scores per frame
            self.per_image[-1].update({k: info[k] for k in ("frames", "seconds", "scores") if k in info})
        if len(self.per_image) % 25 == 1:
            self.rss_trace.append((len(self.per_image), resident_mb()))
        if len(self.examples) < self.keep_examples and "image" in sample:
            phrases = {"sentences": list(sample["sentences"])} if "sentences" in sample else {}
            self.examples.append({"image_id": sample["image_id"], "image": sample["image"],
                                  "target": sample["target"], "pred": pred, **phrases})
        elif len(self.examples) < self.keep_examples:  # video: a few evenly spaced frames for the report's strip
            picked = np.unique(np.linspace(0, len(pred) - 1, min(STRIP_FRAMES, len(pred))).round().astype(int))
            self.examples.append({"image_id": sample_id(sample), "frames": np.asarray(sample["frames"])[picked],
                                  "target": np.asarray(sample["target"])[picked], "pred": pred[picked],
                                  "frame_ids": [sample["frame_ids"][t] for t in picked],
                                  "expressions": dict(sample["expressions"])})
