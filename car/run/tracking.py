"""Experiment loggers at the end of a run: hyperparameters and headline metrics for every
Lightning logger (CSV by default); for Weights & Biases also the full resolved config, the
per-class IoU table and the overlay images (`logger=wandb`, offline unless configured otherwise)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

HEADLINE = ("miou", "oiou", "pixel_accuracy", "j_and_f", "j_mean", "f_mean")


def log_to_loggers(loggers: list, cfg: DictConfig, metrics: dict, overlays: list[Path]) -> None:
    for logger in loggers:
        logger.log_hyperparams({"dataset": cfg.dataset.name, "backbone": cfg.backbone.name,
                                "eta": cfg.car.eta, "theta": cfg.car.theta, "lambda": cfg.car["lambda"]})
        logger.log_metrics({k: v for k, v in metrics.items() if k in HEADLINE})
        if type(logger).__name__ == "WandbLogger":
            log_wandb(logger, cfg, metrics, overlays)
        logger.save()


def log_wandb(logger, cfg: DictConfig, metrics: dict, overlays: list[Path]) -> None:
    run = logger.experiment
    run.config.update({"resolved": OmegaConf.to_container(cfg, resolve=True)}, allow_val_change=True)
    summary = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    summary.update({f"all_rules/{k}": v for k, v in (metrics.get("all_rules") or {}).items() if v is not None})
    per_class = metrics.get("per_class_iou") or {}
    summary.update({f"iou/{name}": iou for name, iou in per_class.items() if iou is not None})
    run.summary.update(summary)
    if per_class:
        logger.log_table(key="per_class_iou", columns=["class", "iou"],
                         data=[[name, iou] for name, iou in per_class.items()])
    if overlays:
        logger.log_image(key="overlays", images=[str(p) for p in overlays],
                         caption=[Path(p).stem for p in overlays])
    run.finish()  # flush now: a multirun starts the next run in the same process
