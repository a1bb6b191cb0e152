"""Run outputs: metrics.json, the per-class table, and the comparison with published numbers."""

from __future__ import annotations

import platform
import time
from importlib import metadata
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf

from car.errors import CarError
from car.metrics.schema import SCHEMA_VERSION, RunRecord, missing_scores, task_of
from car.outputs import write_json, write_text
from car.reporting.comparability import comparability
from car.reporting.tables import per_class_table
from car.reporting.task_views import view_of

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
    """results/published.yaml, read with the safe YAML loader (no Python tags are constructed)."""
    path = Path(results_dir) / "published.yaml"
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise CarError(f"{path} is not plain YAML ({type(err).__name__}): fix or restore the file.") from None
    return data if isinstance(data, dict) else {}


def method_section(published: dict, method: str) -> dict:
    """published.yaml keeps CaR's numbers under `car:` and each peer method's under `peers.<method>:`."""
    return published.get("car", {}) if method == "car" else (published.get("peers") or {}).get(method, {})


def published_row(cfg: DictConfig) -> dict | None:
    """The paper's entry for this run's method: `dataset.published_key` is a path like `voc21`
    (semantic table) or `refcoco/val` (referring table). CaR + SAM runs get the SAM number."""
    key = cfg.dataset.get("published_key")
    if not key:
        return None
    method = cfg.method.name if "method" in cfg else "car"
    section = method_section(load_published(cfg.paths.results_dir), method)
    if method != "car":
        return peer_row(cfg, section, str(key))
    node = section.get(task_of(cfg.dataset).name, {})
    for part in str(key).split("/"):
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, (int, float)):
        node = {"miou": float(node)}
    return sam_row(node) if uses_sam(cfg) else node


def peer_row(cfg: DictConfig, section: dict, key: str) -> dict | None:
    """A peer paper's number for this dataset, with the protocol it was measured under (the
    method's `protocol` defaults overlaid with the row's own keys)."""
    rows = section.get("semantic") or {}
    pamr = cfg.method.get("pamr")
    if pamr is not None and not pamr.enabled and section.get("without_postprocess"):
        rows = section["without_postprocess"]  # NACLIP's rows without PAMR
    row = rows.get(key)
    if not isinstance(row, dict):
        return None
    return {**(section.get("protocol") or {}), **row}


def uses_sam(config) -> bool:
    """Whether a run (its config, a dict or DictConfig) refined its masks with SAM (`postprocess=sam*`)."""
    return ((config or {}).get("postprocess") or {}).get("name") == "sam"


def sam_row(row: dict | None) -> dict | None:
    """The "CaR + SAM" version of a published row: its `sam_miou` as the mIoU, or None where the
    paper has no SAM number for that dataset."""
    if not isinstance(row, dict) or row.get("sam_miou") is None:
        return None
    return {**{k: v for k, v in row.items() if k != "sam_miou"}, "miou": float(row["sam_miou"]), "sam": True}


def build_metrics(cfg: DictConfig, scores: dict, num_images: int, elapsed: float, car_seconds: float,
                  per_image: list[dict]) -> RunRecord:
    """The run's metrics.json record (car/metrics/schema.py): its fields around the metric's `scores`."""
    task = task_of(cfg.dataset).name
    missing = missing_scores(task, scores)
    if missing:
        raise ValueError(f"the {task} metric did not return {missing}: it breaks the metric contract")
    steps = [s for p in per_image for s in p["steps"]]
    published = published_row(cfg)
    head = {
        "schema_version": SCHEMA_VERSION,
        "dataset": cfg.dataset.name,
        "task": task,
        "split": cfg.dataset.loader.get("split"),
        "backbone": {"name": cfg.backbone.name, "proposal": cfg.backbone.proposal.arch,
                     "classifier": cfg.backbone.classifier.arch,
                     "pretrained": [cfg.backbone.proposal.pretrained, cfg.backbone.classifier.pretrained]},
        "num_images": num_images,
    }
    tail = {
        "published": published,
        "comparison": comparability(cfg, published, skipped=(scores.get("skipped") or {}).get("count", 0)),
        "mean_steps": sum(steps) / max(len(steps), 1),
        "elapsed_s": round(elapsed, 3),
        "car_s_per_image": round(car_seconds / max(num_images, 1), 4),
        "versions": versions(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    return {**head, **scores, **tail}


def run_notes(metrics: dict) -> list[str]:
    """One line each when the run resumed stored predictions or skipped samples."""
    lines = []
    if metrics.get("resumed_images"):
        where = (metrics.get("predictions") or {}).get("dir", "the prediction store")
        n = metrics["resumed_images"]
        lines.append(f"resumed {n} image{'s' if n != 1 else ''} from {where}")
    damaged = (metrics.get("recomputed_damaged") or {}).get("count", 0)
    if damaged:
        lines.append(f"recomputed {damaged} damaged stored prediction{'s' if damaged != 1 else ''} "
                     f"(listed in metrics.json)")
    skipped = (metrics.get("skipped") or {}).get("count", 0)
    if skipped:
        lines.append(f"skipped {skipped} sample{'s' if skipped != 1 else ''} (listed in metrics.json)")
    return lines


def print_summary(metrics: dict) -> None:
    for line in run_notes(metrics):
        print(line)
    print(view_of(metrics).console(metrics))  # the task's tables (car/reporting/task_views.py)


def write_outputs(metrics: dict, out_dir: str | Path) -> Path:
    """metrics.json (strict JSON: NaN and infinities as null) and per_class_iou.md, each written atomically."""
    out_dir = Path(out_dir)
    path = write_json(out_dir / "metrics.json", metrics, indent=2, default=str)
    if metrics.get("per_class_iou"):
        write_text(out_dir / "per_class_iou.md", per_class_table(metrics) + "\n")
    return path
