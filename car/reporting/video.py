"""What a finished video run shows: J&F tables, per-video and per-set charts, strips of frames.

* `score_rows(metrics)`: (label, metrics.json key, value) of J&F, J and F (Mean / Recall / Decay),
  the mean over expression sets first, then each set;
* `console_table(metrics)`: the same as Markdown with the paper's numbers and Δ (or why not);
* `add_figures(metrics, add)`: per-video J&F bars (one bar per expression set) and the expression
  sets side by side (J&F, J, F);
* `save_strips(examples, out_dir)`: for the first videos, a strip of evenly spaced frames with
  the ground truth and the predicted objects painted over them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from car.outputs import id_path, save_image
from car.reporting.viz import (
    enlarge,
    font,
    font_size,
    overlay_labels,
    separated_palette,
    upscale_factor,
)

MEASURES = (("J&F", "j_and_f"), ("J-Mean", "j_mean"), ("J-Recall", "j_recall"), ("J-Decay", "j_decay"),
            ("F-Mean", "f_mean"), ("F-Recall", "f_recall"), ("F-Decay", "f_decay"))
PAPER_KEYS = {"j_and_f": "j_and_f", "j_mean": "j", "f_mean": "f"}  # metrics.json key -> published.yaml key


def score_rows(metrics: dict) -> list[tuple[str, str, float | None]]:
    sets = metrics.get("expression_sets") or {}
    mean = "mean of the sets" if len(sets) > 1 else "all videos"
    rows = [(f"{label} ({mean})", key, metrics.get(key)) for label, key in MEASURES]
    for name, scores in sets.items():
        rows += [(f"{label} ({name})", f"expression_sets/{name}/{key}", scores.get(key)) for label, key in MEASURES[:1]
                 + MEASURES[1:2] + MEASURES[4:5]]
    return rows


def paper_value(metrics: dict, key: str) -> float | None:
    """The published number for a headline key (j_and_f, j_mean, f_mean), else None."""
    published = metrics.get("published") or {}
    return published.get(PAPER_KEYS[key]) if key in PAPER_KEYS else None


def console_table(metrics: dict) -> str:
    comparison = metrics.get("comparison") or {"comparable": False, "reason": "no comparison"}
    lines = ["| expression set | videos | J&F | J-Mean | J-Recall | J-Decay | F-Mean | F-Recall | F-Decay |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, s in (metrics.get("expression_sets") or {}).items():
        lines.append(f"| {name} | {len(s.get('per_video', {}))} | " + " | ".join(f"{s[k]:.2f}" for _, k in MEASURES)
                     + " |")
    lines.append(f"| **mean** | {metrics.get('num_videos')} | "
                 + " | ".join(f"{metrics[k]:.2f}" for _, k in MEASURES) + " |")
    paper = [paper_value(metrics, k) for _, k in MEASURES]
    if any(p is not None for p in paper):
        lines.append("| paper | | " + " | ".join("—" if p is None else f"{p:.2f}" for p in paper) + " |")
        if comparison["comparable"]:
            lines.append("| Δ | | " + " | ".join("—" if p is None else f"{metrics[k] - p:+.2f}"
                                                   for p, (_, k) in zip(paper, MEASURES)) + " |")
        else:
            lines.append(f"\nΔ to the paper: not comparable ({comparison['reason']})")
    fps = metrics.get("frames_per_s")
    lines.append(f"\n{metrics.get('num_frames')} frames, {'—' if fps is None else f'{fps:.2f}'} frames/s of CaR "
                 f"(expressions={metrics.get('expressions')}); DAVIS-layout results in {metrics.get('davis_results')}")
    return "\n".join(lines)


def add_figures(metrics: dict, add) -> None:
    """`add(key, title, draw, *args, note=...)` as report_html.make_figures takes it."""
    from car.reporting import plots

    sets = metrics.get("expression_sets") or {}
    if not sets:
        return
    videos = sorted({v for s in sets.values() for v in s.get("per_video", {})})
    series = {name: [(s.get("per_video", {}).get(v) or {}).get("j_and_f") for v in videos] for name, s in sets.items()}
    add("per_video_jf", "J&F per video", lambda path: plots.grouped_bars(videos, series, path, "J&F per video", "J&F"),
        note="one bar per expression set; unsupervised DAVIS protocol")
    measures = ["J&F", "J-Mean", "F-Mean"]
    keys = ["j_and_f", "j_mean", "f_mean"]
    side = {name: [s.get(k) for k in keys] for name, s in sets.items()}
    add("expression_sets", "expression sets side by side",
        lambda path: plots.grouped_bars(measures, side, path, "expression sets side by side", "score"),
        note="each set scored separately; the headline is their mean")


def names_of(expressions: dict) -> list[str]:
    """Label names indexed by object id (0 background) for overlay_labels."""
    top = max([int(k) for k in expressions] + [0])
    names = ["background"] + [f"object {i}" for i in range(1, top + 1)]
    for k, text in expressions.items():
        names[int(k)] = str(text) if len(str(text)) <= 30 else str(text)[:29] + "…"
    return names


def strip(example: dict) -> Image.Image:
    """Rows: frames | ground truth | prediction; columns: the example's frames."""
    frames = np.asarray(example["frames"]).transpose(0, 2, 3, 1)  # [N, H, W, 3]
    names, colours = names_of(example["expressions"]), separated_palette()
    k = upscale_factor(*frames.shape[1:3], min_long=192)
    rows = [[enlarge(f, k) for f in frames]]
    for labels in (example["target"], example["pred"]):
        rows.append([overlay_labels(enlarge(f, k), enlarge(np.asarray(m), k), names, colours)
                     for f, m in zip(frames, labels)])
    h, w = rows[0][0].shape[:2]
    size = max(12, font_size(h, w))
    margin, head, label_w = 8, round(1.8 * size), 7 * size
    canvas = Image.new("RGB", (label_w + len(frames) * (w + margin) + margin,
                               head + 3 * (h + margin) + margin + round(1.6 * size)), "white")
    draw, face = ImageDraw.Draw(canvas), font(size)
    draw.text((margin, margin // 2), str(example["image_id"]), font=face, fill=(60, 60, 60))
    for r, (row, name) in enumerate(zip(rows, ("frames", "ground truth", "prediction"))):
        y = head + r * (h + margin)
        draw.text((margin, y + h // 2 - size // 2), name, font=face, fill=(0, 0, 0))
        for c, panel in enumerate(row):
            canvas.paste(Image.fromarray(panel), (label_w + c * (w + margin), y))
    y = head + 3 * (h + margin)
    for c, frame_id in enumerate(example.get("frame_ids", [])):
        draw.text((label_w + c * (w + margin), y), f"frame {frame_id}", font=face, fill=(90, 90, 90))
    return canvas


def save_strips(examples: list[dict], out_dir: str | Path) -> list[Path]:
    """One strip PNG per example at `out_dir/<expression set>/<video>.png`, written atomically."""
    return [save_image(strip(example), id_path(out_dir, str(example["image_id"]), ".png")) for example in examples]
