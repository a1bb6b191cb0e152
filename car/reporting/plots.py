"""Charts of runs, sweeps and comparisons (matplotlib, drawn off-screen with the Agg canvas).

Every function draws one figure into a PNG file and returns its path. Figures are built as
`matplotlib.figure.Figure` objects on an Agg canvas, without pyplot, so drawing never needs a
display and never changes the caller's matplotlib backend.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from car.outputs import atomic_write

DPI = 110
PAPER_STYLE = {"marker": "*", "s": 260, "color": "#d62728", "edgecolor": "black", "zorder": 5}


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: str | Path) -> Path:
    """The figure as a PNG, written atomically (car/outputs.py): a full disk leaves no half chart."""
    return atomic_write(Path(path), lambda f: fig.savefig(f, format="png", dpi=DPI, facecolor="white"))


def per_class_iou(per_class: dict[str, float | None], path: str | Path, title: str = "per-class IoU") -> Path:
    """Horizontal bars sorted by IoU (best on top); classes without a score (absent from the ground
    truth) are named in the axis label, not drawn."""
    scored = sorted(((n, v) for n, v in per_class.items() if v is not None), key=lambda nv: nv[1])
    absent = [n for n, v in per_class.items() if v is None]
    fig = new_figure(7, max(2.2, 0.28 * len(scored) + 1.3))
    ax = fig.add_subplot()
    names, values = [n for n, _ in scored], [v for _, v in scored]
    bars = ax.barh(range(len(values)), values, color="#1f77b4")
    ax.bar_label(bars, labels=[f"{v:.1f}" for v in values], padding=3, fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8 if len(names) > 30 else 9)
    ax.set_xlim(0, 105)
    ax.set_xlabel("IoU (%)" + (f"; not in the ground truth: {len(absent)} classes" if absent else ""))
    ax.set_title(title)
    return save(fig, path)


MAX_NAMED_TICKS = 200  # above: class ids on a few ticks instead of every name (ADE-847, Context-459)


def confusion_matrix(confmat, names: list[str], path: str | Path, title: str = "confusion matrix") -> Path:
    """Row-normalised heat map (rows: ground truth, columns: prediction; each row sums to 1);
    rows of classes absent from the ground truth are left blank."""
    cm = np.asarray(confmat, dtype=np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.full_like(cm, np.nan), where=rows > 0)
    n = len(cm)
    side = min(max(4.5, 0.32 * n + 2.5), 26)
    fig = new_figure(side + 1.2, side)
    ax = fig.add_subplot()
    image = ax.imshow(norm, cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    fig.colorbar(image, ax=ax, shrink=0.8, label="fraction of the ground-truth row")
    labels = [names[i] if i < len(names) else str(i) for i in range(n)]
    size = 9 if n <= 25 else max(4, 9 - n // 15)
    ticks = range(n) if n <= MAX_NAMED_TICKS else range(0, n, -(-n // MAX_NAMED_TICKS))  # ADE-847: every 5th id
    if n > MAX_NAMED_TICKS:
        labels = [str(i) for i in range(n)]  # hundreds of names are unreadable and take a minute to draw
    ax.set_xticks(ticks, [labels[i] for i in ticks], rotation=90, fontsize=size)
    ax.set_yticks(ticks, [labels[i] for i in ticks], fontsize=size)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    ax.set_title(title)
    if n <= 25:
        for i, j in zip(*np.nonzero(np.nan_to_num(norm) >= 0.005)):
            ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="black" if norm[i, j] > 0.6 else "white")
    return save(fig, path)


def timing(stages: dict[str, float], path: str | Path, title: str = "time per stage") -> Path:
    """Horizontal bars of seconds per stage, in the given order (top to bottom)."""
    names, values = list(stages)[::-1], list(stages.values())[::-1]
    fig = new_figure(7, max(1.8, 0.4 * len(names) + 1.0))
    ax = fig.add_subplot()
    bars = ax.barh(names, values, color="#2ca02c")
    ax.bar_label(bars, labels=[f"{v:.2f} s" for v in values], padding=3, fontsize=8)
    ax.set_xlim(0, max(values + [1e-3]) * 1.2)
    ax.set_xlabel("seconds")
    ax.set_title(title)
    return save(fig, path)


def precision_curve(precision: dict[float, float], path: str | Path, title: str = "precision@X") -> Path:
    """Share of units whose IoU reaches each threshold X."""
    xs = sorted(precision)
    fig = new_figure(5.5, 3.6)
    ax = fig.add_subplot()
    ax.plot(xs, [precision[x] for x in xs], marker="o", color="#1f77b4")
    for x in xs:
        ax.annotate(f"{precision[x]:.1f}", (x, precision[x]), textcoords="offset points", xytext=(0, 6),
                    ha="center", fontsize=8)
    ax.set_xlabel("IoU threshold X")
    ax.set_ylabel("units with IoU ≥ X (%)")
    ax.set_ylim(0, 105)
    ax.set_xticks(xs)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    return save(fig, path)


def iou_histogram(ious: list[float], path: str | Path, title: str = "IoU per unit") -> Path:
    """Histogram of per-unit IoUs (percent) in 10-point bins."""
    fig = new_figure(5.5, 3.6)
    ax = fig.add_subplot()
    counts, _, bars = ax.hist(ious, bins=np.linspace(0, 100, 11), color="#9467bd", edgecolor="white")
    ax.bar_label(bars, labels=[str(int(c)) if c else "" for c in counts], fontsize=8)
    ax.set_xlabel("IoU (%)")
    ax.set_ylabel("units")
    ax.set_xticks(np.linspace(0, 100, 11))
    ax.set_title(f"{title} ({len(ious)} units)")
    return save(fig, path)


def sweep(points: list[dict], swept: list[str], path: str | Path, title: str = "mIoU against each swept threshold"
          ) -> Path:
    """One panel per swept key: mIoU against that key's value, one line per combination of the other
    settings (`point["others"][key]`: the others' label for that panel), the paper's setting starred.

    points: [{"values": {key: value}, "others": {key: label}, "miou": float, "paper": bool}]
    """
    fig = new_figure(max(5.0, 4.6 * len(swept)), 4.2)
    axes = fig.subplots(1, len(swept), squeeze=False)[0]
    for ax, key in zip(axes, swept):
        lines: dict[str, list[dict]] = {}
        for p in points:
            if p["values"].get(key) is not None and p.get("miou") is not None:
                lines.setdefault(p["others"][key], []).append(p)
        for label, members in sorted(lines.items()):
            members.sort(key=lambda p: p["values"][key])
            ax.plot([p["values"][key] for p in members], [p["miou"] for p in members], marker="o",
                    label=label or "all runs")
        paper = [p for p in points if p.get("paper") and p.get("miou") is not None]
        if paper:
            ax.scatter([p["values"][key] for p in paper], [p["miou"] for p in paper], label="paper setting",
                       **PAPER_STYLE)
        ax.set_xlabel(key)
        ax.set_ylabel("mIoU")
        ax.grid(alpha=0.3)
        if len(lines) <= 12:
            ax.legend(fontsize=7, title_fontsize=7, title="other settings" if len(lines) > 1 else None)
    fig.suptitle(title)
    return save(fig, path)


def grouped_bars(groups: list[str], series: dict[str, list[float | None]], path: str | Path, title: str,
                 ylabel: str = "mIoU") -> Path:
    """A bar per series in every group (missing values leave a gap, marked "n/a")."""
    n = max(len(series), 1)
    width = 0.8 / n
    fig = new_figure(max(5.5, 0.9 * len(groups) * max(1, n / 2) + 2), 4.4)
    ax = fig.add_subplot()
    x = np.arange(len(groups))
    top = 0.0
    for i, (name, values) in enumerate(series.items()):
        pos = x - 0.4 + width * (i + 0.5)
        heights = [math.nan if v is None else v for v in values]
        bars = ax.bar(pos, [0 if math.isnan(h) else h for h in heights], width, label=name)
        ax.bar_label(bars, labels=["n/a" if math.isnan(h) else f"{h:.1f}" for h in heights], fontsize=7,
                     padding=2, rotation=90 if len(groups) * n > 16 else 0)
        top = max([top] + [h for h in heights if not math.isnan(h)])
    ax.set_xticks(x, groups, rotation=30 if len(groups) > 5 else 0, ha="right" if len(groups) > 5 else "center")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, max(10.0, top * 1.2))
    ax.legend(fontsize=8)
    ax.set_title(title)
    return save(fig, path)
