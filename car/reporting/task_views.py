"""How a run's scores read in its reports, one view per task kind of the metrics.json schema.

car/reporting/report_html.py and the console summary (results.py) draw every run alike and ask the
run's view (`view_of(metrics)`, by its `task`, car/metrics/schema.py) for what differs: the headline
rule, the score rows, which of them has a published number, what an "image" is, the charts, the
console tables. A new task kind is one more view in `VIEWS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from car.metrics.schema import task_of
from car.reporting import video
from car.reporting.tables import comparison_table, per_class_table

AddFigure = Callable[..., None]  # add(key, title, draw, *args, note=...)


class TaskView(Protocol):
    def score_rows(self, metrics: dict) -> list[tuple[str, str, float | None]]:
        """(label, metrics.json key, value) of every score the run has, the headline first."""

    def paper_value(self, metrics: dict, key: str, paper: float | None) -> float | None:
        """The published number beside the score row `key` (`paper`: the headline's), or None."""

    def images(self, metrics: dict) -> str:
        """What the run went through, for the report's header."""

    def add_figures(self, metrics: dict, add: AddFigure, plots) -> None:
        """The task's charts, through `add` (report_html.make_figures)."""

    def console(self, metrics: dict) -> str:
        """The tables printed at the end of the run."""


class SemanticView:
    def headline_rule(self, metrics: dict) -> str:
        return f"{metrics.get('average')}/{metrics.get('bg_protocol')}"

    def rule_name(self, metrics: dict) -> str:
        """The headline's rule in the console table."""
        protocol = f", bg_protocol={metrics['bg_protocol']}" if metrics.get("bg_protocol") else ""
        return f"{metrics['average']}{protocol}"

    def paper_value(self, metrics: dict, key: str, paper: float | None) -> float | None:
        """The paper's number beside the score row `key`: the row of its rule (all_rules/<rule>)."""
        return paper if key == self.paper_key(metrics) else None

    def paper_key(self, metrics: dict) -> str:
        """The score row the paper's number belongs to: its all_rules key (peers: their own rule)."""
        published = metrics.get("published") or {}
        rule = None
        if "average" in published:
            from car.reporting.compare import paper_rule

            rule = paper_rule(published)
        return f"all_rules/{rule or self.headline_rule(metrics)}"

    def score_rows(self, metrics: dict) -> list[tuple[str, str, float | None]]:
        """(label, metrics.json key, value): mIoU under every rule, the headline first."""
        head = self.headline_rule(metrics)
        rules = metrics.get("all_rules") or {head: metrics.get("miou")}
        order = [head] + [r for r in rules if r != head]
        return [(f"mIoU {r}" + (" (headline)" if r == head else ""), f"all_rules/{r}",
                 rules.get(r, metrics.get("miou") if r == head else None)) for r in order]

    def images(self, metrics: dict) -> str:
        return str(metrics.get("num_images"))

    def console(self, metrics: dict) -> str:
        head = [per_class_table(metrics)] if metrics.get("per_class_iou") else []
        return "\n".join(head + [comparison_table(metrics, self.rule_name(metrics))])

    def add_figures(self, metrics: dict, add: AddFigure, plots) -> None:
        per_class = metrics.get("per_class_iou") or {}
        if per_class:
            add("per_class_iou", "per-class IoU", plots.per_class_iou, per_class,
                note="sorted; classes absent from the ground truth have no IoU")
        if metrics.get("confusion_matrix"):
            names = list(((metrics.get("config") or {}).get("dataset") or {}).get("class_names") or per_class)
            add("confusion_matrix", "confusion matrix (row-normalised)", plots.confusion_matrix,
                metrics["confusion_matrix"], names, note="rows: ground truth; each row sums to 1")


class ReferringView:
    def rule_name(self, metrics: dict) -> str:
        return f"referring mIoU, unit={metrics['unit']}"

    def paper_value(self, metrics: dict, key: str, paper: float | None) -> float | None:
        return paper if key == "miou" else None

    def score_rows(self, metrics: dict) -> list[tuple[str, str, float | None]]:
        """mIoU, oIoU and precision@X."""
        keys = ["miou", "oiou"] + sorted(k for k in metrics if k.startswith("precision@"))
        labels = {"miou": "mIoU", "oiou": "oIoU"}
        return [(labels.get(k, k), k, metrics.get(k)) for k in keys if k in metrics]

    def images(self, metrics: dict) -> str:
        return f"{metrics.get('num_units')} units ({metrics.get('unit')}), {metrics.get('num_sentences')} sentences"

    def console(self, metrics: dict) -> str:
        return comparison_table(metrics, self.rule_name(metrics))

    def add_figures(self, metrics: dict, add: AddFigure, plots) -> None:
        precision = {float(k.split("@")[1]): v for k, v in metrics.items() if k.startswith("precision@")}
        if precision:
            add("precision_curve", "precision@X", plots.precision_curve, precision,
                note=f"weighting: {metrics.get('weighting', 'unit')}")
        ious = metrics.get("unit_ious")
        if ious:
            add("iou_histogram", "IoU per unit", plots.iou_histogram, ious, note="every unit counts once")


class VideoView:
    """J&F, J and F per expression set (car/reporting/video.py)."""

    def paper_value(self, metrics: dict, key: str, paper: float | None) -> float | None:
        return video.paper_value(metrics, key)

    def score_rows(self, metrics: dict) -> list[tuple[str, str, float | None]]:
        return video.score_rows(metrics)

    def images(self, metrics: dict) -> str:
        sets = len(metrics.get("expression_sets") or {})
        fps = metrics.get("frames_per_s")
        return (f"{metrics.get('num_videos')} videos x {sets} expression sets, {metrics.get('num_frames')} frames, "
                f"{'—' if fps is None else format(fps, '.2f')} frames/s (expressions={metrics.get('expressions')})")

    def add_figures(self, metrics: dict, add: AddFigure, plots) -> None:
        video.add_figures(metrics, add)

    def console(self, metrics: dict) -> str:
        return video.console_table(metrics)


VIEWS: dict[str, TaskView] = {"semantic": SemanticView(), "referring": ReferringView(), "video": VideoView()}


def view_of(metrics: dict) -> TaskView:
    """The view of a run's task (an unknown task: CarError, one sentence)."""
    return VIEWS[task_of(metrics).name]
