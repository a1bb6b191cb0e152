"""One evaluation run: build everything from the config, predict, score, write results."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from car.clip.text import flush_all as flush_text_caches
from car.data.build import build_dataset
from car.data.common import list_collate
from car.data.guard import GuardedDataset
from car.errors import CarError
from car.methods.registry import method_of
from car.outputs import check_output_dir
from car.postprocess.sam import sam_record
from car.reporting.report_html import write_report_safely
from car.reporting.results import build_metrics, print_summary, write_outputs
from car.run.build import build_loggers, build_metric, build_segmenter, build_trainer, load_backbones
from car.run.distributed import gather_interleaved, gather_predictions, gather_sum
from car.run.inputs import check_inputs
from car.run.predictor import CarPredictor
from car.run.store import PredictionStore, run_key
from car.run.tasks import task_run
from car.run.tracking import log_to_loggers
from car.settings import Settings, validate

log = logging.getLogger(__name__)


def nothing_evaluated(total: int, skipped: list[dict]) -> str:
    """The sentence of a run in which no sample could be evaluated."""
    if skipped:
        return (f"No sample was evaluated: all {len(skipped)} of {total} were skipped under on_bad_sample=skip "
                f"(the first: {skipped[0]['error'].rstrip('.')}); fix the data before scoring it.")
    return f"No sample was evaluated: the dataset yielded none of its {total} samples; check the dataset settings."


def evaluate(cfg: DictConfig) -> dict:
    """Run the method over `cfg.dataset` and return the metrics dict (also written to the run dir): the
    settings validated (car.settings.validate), every input checked, then `run_evaluation`."""
    settings = validate(cfg)  # a bad setting stops the run before anything loads
    check_inputs(settings)  # every missing weight (and then the dataset) in one sentence, before any model loads
    return run_evaluation(settings)


def run_evaluation(settings: Settings) -> dict:
    """`evaluate` on validated settings whose inputs were checked (the command line checks them first)."""
    start = time.perf_counter()
    cfg, run = settings.config, settings.run
    pl.seed_everything(run.seed, workers=True, verbose=False)
    out_dir = Path(cfg.output_dir)
    metric = build_metric(settings)
    check_output_dir(out_dir, "the run directory (hydra.run.dir)")  # read-only or full: one sentence, now
    dataset = GuardedDataset(build_dataset(settings), run.on_bad_sample)
    store = PredictionStore(out_dir, run_key(cfg)) if run.save_predictions else None
    method = method_of(settings)
    clips = load_backbones(settings) if method.uses_backbone else (None, None)  # GroupViT brings its own model
    segmenter = build_segmenter(settings, *clips)
    budget = segmenter.budget  # CaR's car.max_pixels (the peers size their own input)
    dataset.check = budget.check_sample if budget else None  # resize_large=false: too big is a bad sample
    sam = segmenter.sam_masks  # SAM's automatic masks (postprocess=sam)
    models = [clip.model for clip in clips if clip is not None] + list(segmenter.models)  # moved with the CLIPs
    task = task_run(cfg)  # what the task kind adds: files per sample, run fields, examples (car/run/tasks.py)
    writer = task.writer(cfg, out_dir)
    predictor = CarPredictor(segmenter, models, metric, keep_examples=run.num_overlays,
                             crf_workers=run.crf_workers, store=store, writer=writer)
    loader = DataLoader(dataset, batch_size=1, shuffle=False, num_workers=run.num_workers, collate_fn=list_collate)
    loggers = build_loggers(settings)
    trainer = build_trainer(settings, loggers)
    setup_done = time.perf_counter()
    trainer.predict(predictor, dataloaders=loader, return_predictions=False)
    flush_text_caches()
    per_image, examples, car_seconds = gather_predictions(predictor)  # all DDP ranks, dataset order
    predict_done = time.perf_counter()

    skipped = gather_interleaved(predictor.skipped)
    if not per_image:
        raise CarError(nothing_evaluated(len(dataset), skipped))
    scores = dict(predictor.metric.compute())  # the task's scores (car/metrics/schema.py)
    scores.update(task.fields(cfg, per_image, out_dir))
    scores["skipped"] = {"count": len(skipped), "on_bad_sample": run.on_bad_sample, "samples": skipped}
    resized = [{k: p[k] for k in ("image_id", "resized_from", "resized_to")} for p in per_image if "resized_from" in p]
    scores["resized"] = {"count": len(resized), "max_pixels": budget.max_pixels if budget else None,
                         "pixel_limit": budget.limit if budget else None, "images": resized}
    scores["resumed_images"] = int(gather_sum(predictor.resumed))
    damaged = gather_interleaved(predictor.damaged)
    scores["recomputed_damaged"] = {"count": len(damaged), "samples": damaged}
    scores["postprocess"] = {"name": settings.postprocess, "sam": sam_record(cfg, sam)}
    scores["rss_mb_trace"] = predictor.rss_trace  # rank 0's (images done, resident MB)
    if store is not None:
        scores["predictions"] = {"dir": str(store.dir), "bytes_per_image": store.bytes_used() / max(len(per_image), 1)}
    scores["timing_s"] = {"setup": round(setup_done - start, 3), "predict": round(predict_done - setup_done, 3),
                          "car": round(car_seconds, 3), "scoring": round(time.perf_counter() - predict_done, 3)}
    metrics = build_metrics(cfg, scores, num_images=len(per_image), elapsed=time.perf_counter() - start,
                            car_seconds=car_seconds, per_image=per_image)
    if method.run_notes is not None:  # a peer method: what it queried (its paper row is `published`)
        metrics.update(method.run_notes(settings, segmenter))
    if trainer.is_global_zero:
        path = write_outputs(metrics, out_dir)
        overlays = task.save_examples(examples, predictor.metric.label_names, out_dir / "overlays")
        log_to_loggers(loggers, cfg, metrics, overlays)
        print_summary(metrics)
        log.info("wrote %s", path)
        report = write_report_safely(out_dir)
        if report is not None:
            print(f"report: {report}")
    return metrics
