"""What a task kind adds to a run beyond its metric's scores: files written per sample, run fields, examples.

`evaluate()` asks the run's `TaskRun` (`task_run(cfg)`, by `dataset.task`, car/metrics/schema.py)
instead of branching on the task: image tasks (semantic, referring) write nothing more and save their
first examples as overlays; video runs write every prediction in the DAVIS layout
(car/run/davis_output.py), record frames, frames/s and where those results are, and save strips.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from car.metrics.schema import task_of
from car.reporting.video import save_strips
from car.reporting.viz import save_overlays
from car.run.davis_output import DavisWriter


class ImageTaskRun:
    def writer(self, cfg: DictConfig, out_dir: Path) -> None:
        return None

    def fields(self, cfg: DictConfig, per_image: list[dict], out_dir: Path) -> dict:
        return {}

    def save_examples(self, examples: list[dict], label_names: list[str], folder: Path) -> list[Path]:
        return save_overlays(examples, label_names, folder)


class VideoTaskRun:
    def writer(self, cfg: DictConfig, out_dir: Path) -> DavisWriter:
        """Results in DAVIS layout (and, for a generated dataset, its ground truth as a DAVIS tree)."""
        truth = out_dir / "davis_root" if cfg.dataset.video.write_ground_truth else None
        return DavisWriter(out_dir / "davis", truth)

    def fields(self, cfg: DictConfig, per_image: list[dict], out_dir: Path) -> dict:
        """Frames and frames/s, and where the DAVIS-layout results are (`python -m car.metrics.davis
        --results <run>/davis/<set>` re-scores one set)."""
        frames = sum(p.get("frames", 0) for p in per_image)
        seconds = sum(p.get("seconds", 0.0) for p in per_image)
        video = cfg.dataset.video
        return {"num_frames": frames, "frames_per_s": round(frames / seconds, 3) if seconds else None,
                "expressions": video.expressions, "davis_results": str(out_dir / "davis"),
                "davis_root": str(out_dir / "davis_root") if video.write_ground_truth else video.get("davis_root"),
                "unit_note": f"DAVIS {video.protocol} protocol: J&F, J and F per expression set, and their mean",
                "per_video_frames": {p["image_id"]: p.get("frames") for p in per_image}}

    def save_examples(self, examples: list[dict], label_names: list[str], folder: Path) -> list[Path]:
        return save_strips(examples, folder)


TASK_RUNS = {"semantic": ImageTaskRun(), "referring": ImageTaskRun(), "video": VideoTaskRun()}


def task_run(cfg: DictConfig) -> ImageTaskRun | VideoTaskRun:
    return TASK_RUNS[task_of(cfg.dataset).name]
