"""One evaluation run: build everything from the config, predict, score, write results."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from car.data.common import list_collate
from car.data.guard import GuardedDataset
from car.errors import CarError
from car.methods.car.text import flush_all as flush_text_caches
from car.methods.peers.build import run_notes as peer_run_notes
from car.methods.peers.build import uses_backbone
from car.metrics import protocol_name, segmentation_scores
from car.outputs import check_output_dir
from car.postprocess.sam import sam_record
from car.reporting.report_html import write_report_safely
from car.reporting.results import build_metrics, print_summary, write_outputs
from car.reporting.video import save_strips
from car.reporting.viz import save_overlays
from car.run.build import (
    build_dataset,
    build_loggers,
    build_metric,
    build_segmenter,
    build_trainer,
    is_referring,
    is_video,
    load_backbones,
    predicts_background,
)
from car.run.davis_output import DavisWriter
from car.run.distributed import gather_interleaved, gather_predictions, gather_sum
from car.run.inputs import check_inputs
from car.run.predictor import CarPredictor
from car.run.store import PredictionStore, run_key
from car.run.tracking import log_to_loggers

log = logging.getLogger(__name__)


def semantic_scores(cfg: DictConfig, confmat) -> dict:
    """The configured rule, plus every (average, protocol) pair that applies, by name. Protocols
    are named by `protocol_name`: "standard" becomes standard_no_bg for runs whose predictions
    have no background class (the peers) and standard_bg_miss for CaR's background channel."""
    names = list(cfg.dataset.class_names)
    configured = cfg.dataset.bg_protocol
    background = predicts_background(cfg)
    scores = segmentation_scores(confmat, average=cfg.dataset.average, bg_protocol=configured, class_names=names)
    scores["bg_protocol"] = protocol_name(configured, background)
    protocols = [None] if configured is None else ["car", "standard"]
    scores["all_rules"] = {
        f"{average}/{protocol_name(protocol, background)}":
            segmentation_scores(confmat, average=average, bg_protocol=protocol, class_names=names)["miou"]
        for average in ("gt_present", "union_present") for protocol in protocols
    }
    scores["confusion_matrix"] = confmat.tolist()
    return scores


def referring_summary(cfg: DictConfig, scores: dict) -> dict:
    """Name the evaluation unit and the weighting (`scores["weighting"]`, from the metric)."""
    unit = cfg.dataset.loader.unit
    scores["unit"] = unit
    run = ("object: one CaR run per referred object over all its sentences (official CaR)" if unit == "object" else
           "sentence: one CaR run per sentence (standard RIS protocol)")
    if unit == "sentence":
        counted = "every sentence counts once"
    elif scores["weighting"] == "unit":
        counted = "every object counts once in mIoU, oIoU and precision@X (official CaR evaluation)"
    else:
        counted = "its mask counts once per sentence of the object (weighting=sentence)"
    scores["unit_note"] = f"{run}; {counted}"
    return scores


def video_summary(cfg: DictConfig, scores: dict, per_image: list[dict], out_dir: Path) -> dict:
    """J&F per expression set and their mean (car/metrics/video.py), frames/s, and where the DAVIS-layout
    results are (`python -m car.metrics.davis --results <run>/davis/<set>` re-scores one set)."""
    frames = sum(p.get("frames", 0) for p in per_image)
    seconds = sum(p.get("seconds", 0.0) for p in per_image)
    scores["num_frames"] = frames
    scores["frames_per_s"] = round(frames / seconds, 3) if seconds else None
    scores["expressions"] = cfg.dataset.video.expressions
    scores["davis_results"] = str(out_dir / "davis")
    scores["davis_root"] = str(out_dir / "davis_root") if cfg.dataset.video.write_ground_truth else \
        cfg.dataset.video.get("davis_root")
    scores["per_video_frames"] = {p["image_id"]: p.get("frames") for p in per_image}
    return scores


def nothing_evaluated(total: int, skipped: list[dict]) -> str:
    """The sentence of a run in which no sample could be evaluated."""
    if skipped:
        return (f"No sample was evaluated: all {len(skipped)} of {total} were skipped under on_bad_sample=skip "
                f"(the first: {skipped[0]['error'].rstrip('.')}); fix the data before scoring it.")
    return f"No sample was evaluated: the dataset yielded none of its {total} samples; check the dataset settings."


def evaluate(cfg: DictConfig) -> dict:
    """Run CaR over `cfg.dataset` and return the metrics dict (also written to the run dir)."""
    start = time.perf_counter()
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    out_dir = Path(cfg.output_dir)
    metric = build_metric(cfg)  # first: a bad metric setting stops the run before any loading
    check_output_dir(out_dir, "the run directory (hydra.run.dir)")  # read-only or full: one sentence, now
    check_inputs(cfg)  # every missing weight (and then the dataset) in one sentence, before any model loads
    dataset = GuardedDataset(build_dataset(cfg), cfg.get("on_bad_sample", "fail"))
    store = PredictionStore(out_dir, run_key(cfg)) if cfg.get("save_predictions", True) else None
    clips = load_backbones(cfg) if uses_backbone(cfg) else (None, None)  # GroupViT brings its own model
    segmenter = build_segmenter(cfg, *clips)
    budget = getattr(segmenter, "budget", None)  # CaR's car.max_pixels (the peers size their own input)
    dataset.check = budget.check_sample if budget else None  # resize_large=false: too big is a bad sample
    sam = getattr(segmenter, "sam_masks", None)  # SAM's automatic masks (postprocess=sam), moved with CLIP
    models = [clip.model for clip in clips if clip is not None] + list(getattr(segmenter, "models", [])) \
        + ([sam.sam] if sam is not None else [])
    writer = None
    if is_video(cfg):  # results in DAVIS layout (and, for a generated dataset, its ground truth as a DAVIS tree)
        writer = DavisWriter(out_dir / "davis", out_dir / "davis_root" if cfg.dataset.video.write_ground_truth else None)
    predictor = CarPredictor(segmenter, models, metric, keep_examples=cfg.num_overlays,
                             crf_workers=cfg.get("crf_workers", 0), store=store, writer=writer)
    loader = DataLoader(dataset, batch_size=1, shuffle=False, num_workers=cfg.num_workers, collate_fn=list_collate)
    loggers = build_loggers(cfg)
    trainer = build_trainer(cfg, loggers)
    setup_done = time.perf_counter()
    trainer.predict(predictor, dataloaders=loader, return_predictions=False)
    flush_text_caches()
    per_image, examples, car_seconds = gather_predictions(predictor)  # all DDP ranks, dataset order
    predict_done = time.perf_counter()

    skipped = gather_interleaved(predictor.skipped)
    if not per_image:
        raise CarError(nothing_evaluated(len(dataset), skipped))
    computed = predictor.metric.compute()
    if is_video(cfg):
        scores = video_summary(cfg, computed, per_image, out_dir)
        class_names = []
    elif is_referring(cfg):
        scores = referring_summary(cfg, {k: v for k, v in computed.items()})
        scores["unit_ious"] = [p["iou"] for p in per_image if "iou" in p]  # per unit, dataset order (percent)
        class_names = ["background", "referred object"]
    else:
        scores = semantic_scores(cfg, computed.cpu())
        class_names = list(cfg.dataset.class_names)
    scores["skipped"] = {"count": len(skipped), "on_bad_sample": cfg.get("on_bad_sample", "fail"), "samples": skipped}
    resized = [{k: p[k] for k in ("image_id", "resized_from", "resized_to")} for p in per_image if "resized_from" in p]
    scores["resized"] = {"count": len(resized), "max_pixels": budget.max_pixels if budget else None,
                         "pixel_limit": budget.limit if budget else None, "images": resized}
    scores["resumed_images"] = int(gather_sum(predictor.resumed))
    damaged = gather_interleaved(predictor.damaged)
    scores["recomputed_damaged"] = {"count": len(damaged), "samples": damaged}
    scores["postprocess"] = {"name": cfg.postprocess.get("name", "none") if "postprocess" in cfg else "none",
                             "sam": sam_record(cfg, sam)}
    scores["rss_mb_trace"] = predictor.rss_trace  # rank 0's (images done, resident MB)
    if store is not None:
        scores["predictions"] = {"dir": str(store.dir), "bytes_per_image": store.bytes_used() / max(len(per_image), 1)}
    scores["timing_s"] = {"setup": round(setup_done - start, 3), "predict": round(predict_done - setup_done, 3),
                          "car": round(car_seconds, 3), "scoring": round(time.perf_counter() - predict_done, 3)}
    metrics = build_metrics(cfg, scores, num_images=len(per_image), elapsed=time.perf_counter() - start,
                            car_seconds=car_seconds, per_image=per_image)
    if cfg.method.name != "car":  # a peer method: what it queried (its paper row is `published`)
        metrics.update(peer_run_notes(cfg, segmenter))
    if trainer.is_global_zero:
        path = write_outputs(metrics, out_dir)
        overlays = save_strips(examples, out_dir / "overlays") if is_video(cfg) else \
            save_overlays(examples, class_names, out_dir / "overlays")
        log_to_loggers(loggers, cfg, metrics, overlays)
        print_summary(metrics)
        log.info("wrote %s", path)
        report = write_report_safely(out_dir)
        if report is not None:
            print(f"report: {report}")
    return metrics
