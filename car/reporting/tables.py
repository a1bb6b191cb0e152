"""The console's tables of a run (printed at its end, per_class_iou.md), from its metrics.json record."""

from __future__ import annotations


def fmt(value, spec: str = ".2f") -> str:
    """A number in a table cell: `spec`-formatted, or — when there is none."""
    return "—" if value is None else format(value, spec)


def markdown(header: list[str], rows: list[list]) -> str:
    """A Markdown table: the header, its rule, one line of cells per row."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows])


def per_class_table(metrics: dict) -> str:
    lines = ["| class | IoU |", "|---|---|"]
    for name, iou in metrics.get("per_class_iou", {}).items():
        lines.append(f"| {name} | {'—' if iou is None else f'{iou:.2f}'} |")
    return "\n".join(lines)


def delta_cell(metrics: dict) -> str:
    """Δ to the paper only where the run is comparable (car/reporting/comparability.py), else why not."""
    paper = (metrics.get("published") or {}).get("miou")
    if paper is None:
        return "—"
    comparison = metrics.get("comparison") or {"comparable": True}
    if not comparison["comparable"]:
        return f"not comparable ({comparison['reason']})"
    return f"{metrics['miou'] - paper:+.2f}"


def comparison_table(metrics: dict, rule: str) -> str:
    """The console's one-row table: the headline under `rule`, the paper's number and the Δ."""
    paper = (metrics.get("published") or {}).get("miou")
    delta = delta_cell(metrics)
    extra = f" oIoU {metrics['oiou']:.2f} |" if "oiou" in metrics else ""
    return "\n".join([
        f"| dataset | backbone | images | mIoU ({rule}) | paper | Δ |{' oIoU |' if extra else ''}",
        "|---|---|---|---|---|---|" + ("---|" if extra else ""),
        f"| {metrics['dataset']} | {metrics['backbone']['name']} | {metrics['num_images']} | {metrics['miou']:.2f} | "
        f"{'—' if paper is None else paper} | {delta} |{extra}",
    ])
