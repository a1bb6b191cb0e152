"""One evaluation run: build everything from the config, predict, score, write results."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from car.build import build_dataset, build_loggers, build_segmenter, build_trainer, load_backbones
from car.data.common import list_collate
from car.metrics import segmentation_scores
from car.predictor import CarPredictor
from car.results import build_metrics, comparison_table, per_class_table, write_outputs
from car.viz import save_overlays

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> dict:
    """Run CaR over `cfg.dataset` and return the metrics dict (also written to the run dir)."""
    start = time.perf_counter()
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    out_dir = Path(cfg.output_dir)
    dataset = build_dataset(cfg)
    proposal_clip, classifier_clip = load_backbones(cfg)
    segmenter = build_segmenter(cfg, proposal_clip, classifier_clip)
    predictor = CarPredictor(segmenter, [proposal_clip.model, classifier_clip.model], cfg.dataset.num_classes,
                             ignore_index=cfg.dataset.ignore_index, keep_examples=cfg.num_overlays)
    loader = DataLoader(dataset, batch_size=1, shuffle=False, num_workers=cfg.num_workers, collate_fn=list_collate)
    loggers = build_loggers(cfg)
    trainer = build_trainer(cfg, loggers)
    trainer.predict(predictor, dataloaders=loader, return_predictions=False)

    confmat = predictor.confmat.compute().cpu()
    names = list(cfg.dataset.class_names)
    rules = {}
    for average in ("gt_present", "union_present"):
        for protocol in ([cfg.dataset.bg_protocol] if cfg.dataset.bg_protocol is None else ["car", "standard"]):
            key = f"{average}/{protocol or 'with_background'}"
            rules[key] = segmentation_scores(confmat, average=average, bg_protocol=protocol, class_names=names)["miou"]
    scores = segmentation_scores(confmat, average=cfg.dataset.average, bg_protocol=cfg.dataset.bg_protocol,
                                 class_names=names)
    metrics = build_metrics(cfg, scores, rules, num_images=int(len(predictor.per_image)),
                            elapsed=time.perf_counter() - start, car_seconds=predictor.seconds,
                            per_image=predictor.per_image)
    metrics["confusion_matrix"] = confmat.tolist()
    if trainer.is_global_zero:
        path = write_outputs(metrics, out_dir)
        save_overlays(predictor.examples, names, out_dir / "overlays")
        for logger in loggers:
            logger.log_hyperparams({"dataset": cfg.dataset.name, "backbone": cfg.backbone.name,
                                    "eta": cfg.car.eta, "theta": cfg.car.theta, "lambda": cfg.car["lambda"]})
            logger.log_metrics({"miou": metrics["miou"], "pixel_accuracy": metrics["pixel_accuracy"]})
            logger.save()
        print(per_class_table(metrics))
        print(comparison_table(metrics))
        log.info("wrote %s", path)
    return metrics


