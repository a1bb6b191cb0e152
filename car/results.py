"""Run outputs: metrics.json, the per-class table, and the comparison with published numbers."""

from __future__ import annotations

import json
import platform
import time
from importlib import metadata
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf

PACKAGES = ("torch", "open_clip_torch", "pytorch-lightning", "torchmetrics", "hydra-core", "pydensecrf2", "numpy")


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def load_published(results_dir: str | Path) -> dict:
    path = Path(results_dir) / "published.yaml"
    return yaml.safe_load(path.read_text()) if path.is_file() else {}


def published_row(cfg: DictConfig) -> dict | None:
    key = cfg.dataset.get("published_key")
    return load_published(cfg.paths.results_dir).get("car", {}).get("semantic", {}).get(key) if key else None


def build_metrics(cfg: DictConfig, scores: dict, all_scores: dict, num_images: int, elapsed: float,
                  car_seconds: float, per_image: list[dict]) -> dict:
    steps = [sum(p["steps"]) for p in per_image]
    return {
        "dataset": cfg.dataset.name,
        "split": cfg.dataset.loader.get("split"),
        "backbone": {"name": cfg.backbone.name, "proposal": cfg.backbone.proposal.arch,
                     "classifier": cfg.backbone.classifier.arch,
                     "pretrained": [cfg.backbone.proposal.pretrained, cfg.backbone.classifier.pretrained]},
        "num_images": num_images,
        "miou": scores["miou"],
        "average": scores["average"],
        "bg_protocol": scores["bg_protocol"],
        "pixel_accuracy": scores["pixel_accuracy"],
        "mean_accuracy": scores["mean_accuracy"],
        "per_class_iou": scores["per_class_iou"],
        "all_rules": all_scores,
        "published": published_row(cfg),
        "mean_steps": sum(steps) / max(len(steps), 1),
        "elapsed_s": round(elapsed, 3),
        "car_s_per_image": round(car_seconds / max(num_images, 1), 4),
        "versions": versions(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }


def per_class_table(metrics: dict) -> str:
    lines = ["| class | IoU |", "|---|---|"]
    for name, iou in metrics["per_class_iou"].items():
        lines.append(f"| {name} | {'—' if iou is None else f'{iou:.2f}'} |")
    return "\n".join(lines)


def comparison_table(metrics: dict) -> str:
    pub = metrics.get("published") or {}
    paper = pub.get("miou")
    delta = "—" if paper is None else f"{metrics['miou'] - paper:+.2f}"
    rule = f"{metrics['average']}" + (f", bg_protocol={metrics['bg_protocol']}" if metrics["bg_protocol"] else "")
    lines = [
        f"| dataset | backbone | images | mIoU ({rule}) | paper | Δ |",
        "|---|---|---|---|---|---|",
        f"| {metrics['dataset']} | {metrics['backbone']['name']} | {metrics['num_images']} | {metrics['miou']:.2f} | "
        f"{'—' if paper is None else paper} | {delta} |",
    ]
    return "\n".join(lines)


def write_outputs(metrics: dict, out_dir: str | Path) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    (out_dir / "per_class_iou.md").write_text(per_class_table(metrics) + "\n")
    return out_dir / "metrics.json"
