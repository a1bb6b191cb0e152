"""The run report: one static, self-contained `report.html` next to a run's metrics.json.

    python -m car.reporting.report_html RUN_DIR        # (re)build it from a finished run

Every evaluation writes it at the end (car/run/evaluation.py). It holds a header card (dataset, split,
backbone, method, quirk profile, images, resumed/skipped counts, time), mIoU under each averaging
rule with the published number and Δ, or "not comparable (reason)" (the verdict metrics.json records
under `comparison`, car/reporting/comparability.py; worked out here for older runs), the per-class IoU as a sorted
bar chart, the row-normalised confusion matrix, the time per stage, and the overlay gallery; for
referring runs the precision@X curve and the per-unit IoU histogram instead of the class charts; for
video runs J&F, J and F per expression set, the per-video J&F bars, the sets side by side and strips
of frames with their masks (car/reporting/video.py).
The charts are written as PNGs into `<run>/figures/` (car/reporting/plots.py) and embedded, like the
overlays, as base64 data, so the file opens offline and can be moved on its own. (`car.reporting.report` is
a different command: reproduced numbers against published ones over many runs.)
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import logging
import sys
from pathlib import Path

import yaml

from car.errors import CarError
from car.metrics.schema import check_record, task_of
from car.outputs import write_text
from car.reporting.tables import fmt
from car.reporting.task_views import view_of

log = logging.getLogger(__name__)

REPORT = "report.html"
FIGURES = "figures"
STAGES = {"setup": "setup: data, models", "car": "predict: CaR", "other": "predict: data loading, Lightning",
          "scoring": "scoring"}


def esc(value, quote: bool = False) -> str:
    return html.escape(str(value), quote=quote)


def load_metrics(run_dir: str | Path) -> dict:
    """A run's metrics.json as a dict; CarError (one sentence) if missing, truncated or not an object."""
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        raise CarError(f"No metrics.json in {run_dir}: give a finished run's directory.")
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as err:
        raise CarError(f"{path} is not valid JSON ({type(err).__name__}: {str(err).splitlines()[0]}): it is "
                       f"truncated or damaged; re-run the evaluation to write it again.") from None
    if not isinstance(metrics, dict):
        raise CarError(f"{path} holds a JSON {type(metrics).__name__}, not the object a run writes: it is not a "
                       f"run's metrics.json.")
    return check_record(metrics, str(path))


def quirk_profile(config: dict) -> str:
    """official (car=default), clean (car=clean) or mixed (the keys that differ from official)."""
    from car.config import CONFIG_DIR

    car = config.get("car") or {}
    if (config.get("method") or {}).get("name", "car") != "car":
        return "— (peer method)"
    ours = {**(car.get("quirks") or {}), "crf.image": (car.get("crf") or {}).get("image")}
    default = yaml.safe_load((CONFIG_DIR / "car" / "default.yaml").read_text())
    clean = yaml.safe_load((CONFIG_DIR / "car" / "clean.yaml").read_text())
    official = {**default["quirks"], "crf.image": default["crf"]["image"]}
    corrected = {**official, **(clean.get("quirks") or {}), "crf.image": clean.get("crf", {}).get("image", "rgb")}
    if all(ours.get(k) == v for k, v in official.items()):
        return "official (car=default)"
    if all(ours.get(k) == v for k, v in corrected.items()):
        return "clean (car=clean)"
    changed = [f"{k}={ours.get(k)}" for k, v in official.items() if ours.get(k) != v]
    return "mixed: official except " + ", ".join(changed)


def stored_verdict(metrics: dict) -> tuple[bool | None, str | None]:
    """The comparability verdict recorded in metrics.json, if the run recorded one."""
    for key in ("comparison", "comparability", "comparable"):
        value = metrics.get(key)
        if isinstance(value, bool):
            reason = metrics.get("not_comparable_reason") or metrics.get("comparable_reason")
            return value, reason
        if isinstance(value, dict) and any(k in value for k in ("comparable", "ok", "verdict")):
            ok = value.get("comparable", value.get("ok"))
            if ok is None and isinstance(value.get("verdict"), str):
                ok = value["verdict"].strip().lower() == "comparable"
            reasons = value.get("reasons") or value.get("reason") or value.get("why")
            if isinstance(reasons, (list, tuple)):
                reasons = "; ".join(map(str, reasons))
            return (None if ok is None else bool(ok)), reasons
    return None, None


def fallback_reasons(metrics: dict) -> list[str]:
    """Why a run's number cannot stand next to the paper's, worked out from metrics.json alone."""
    config = metrics.get("config") or {}
    reasons = []
    if not (metrics.get("published") or {}).get("miou"):
        reasons.append("no published number for this dataset and split")
    if None in ((metrics.get("backbone") or {}).get("pretrained") or []):
        reasons.append("random-initialised weights")
    limit = (config.get("dataset") or {}).get("limit")
    if limit is not None:
        reasons.append(f"a subset of the split (dataset.limit={limit})")
    skipped = (metrics.get("skipped") or {}).get("count") or 0
    if skipped:
        reasons.append(f"{skipped} samples skipped")
    if (config.get("car") or {}).get("oracle_queries"):
        reasons.append("oracle queries (diagnostic)")
    return reasons


def verdict(metrics: dict) -> dict:
    """{"paper", "delta", "comparable", "reason"}: the stored verdict where the run has one."""
    head = task_of(metrics).headline  # published rows hold the same key (miou, j_and_f)
    paper = (metrics.get("published") or {}).get(head)
    ours = metrics.get(head)
    delta = None if paper is None or ours is None else ours - paper
    ok, reason = stored_verdict(metrics)
    if ok is None:
        reasons = fallback_reasons(metrics)
        ok, reason = not reasons, "; ".join(reasons) or None
    return {"paper": paper, "delta": delta, "comparable": ok, "reason": reason}


def timing_stages(metrics: dict) -> dict[str, float]:
    stages = metrics.get("timing_s")
    if not stages:  # runs before per-stage timing: CaR's share of the whole run only
        car = (metrics.get("car_s_per_image") or 0) * (metrics.get("num_images") or 0)
        return {STAGES["car"]: car, "everything else": max((metrics.get("elapsed_s") or 0) - car, 0.0)}
    return {STAGES["setup"]: stages["setup"], STAGES["car"]: stages["car"],
            STAGES["other"]: max(stages["predict"] - stages["car"], 0.0), STAGES["scoring"]: stages["scoring"]}


def make_figures(metrics: dict, out: Path) -> list[dict]:
    """The run's charts as PNGs under `out`: [{"key", "title", "path", "note"}]."""
    from car.reporting import plots

    figures = []

    def add(key: str, title: str, draw, *args, note: str = "") -> None:
        figures.append({"key": key, "title": title, "path": draw(*args, out / f"{key}.png"), "note": note})

    view_of(metrics).add_figures(metrics, add, plots)
    add("timing", "time per stage", plots.timing, timing_stages(metrics),
        note=f"{fmt(metrics.get('car_s_per_image'), '.3f')} s of CaR per image")
    return figures


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def header_fields(metrics: dict, run_dir: Path) -> list[tuple[str, str]]:
    config = metrics.get("config") or {}
    backbone = metrics.get("backbone") or {}
    weights = ", ".join(Path(str(p)).name if p else "random init" for p in backbone.get("pretrained") or [])
    method = (config.get("method") or {}).get("name", "car")
    post = (metrics.get("postprocess") or {}).get("name", "none")
    images = view_of(metrics).images(metrics)
    resized = (metrics.get("resized") or {}).get("count", 0)
    return [("dataset", f"{metrics.get('dataset')} ({metrics.get('task', 'semantic')})"),
            ("split", str(metrics.get("split"))),
            ("backbone", f"{backbone.get('name')}: {backbone.get('proposal')} / {backbone.get('classifier')}"),
            ("weights", weights or "—"),
            ("method", method + ("" if post == "none" else f" + {post}")),
            ("quirk profile", quirk_profile(config)),
            ("images", images),
            ("resumed / skipped / resized", f"{metrics.get('resumed_images', 0)} / "
             f"{(metrics.get('skipped') or {}).get('count', 0)} / {resized}"),
            ("time", f"{fmt(metrics.get('elapsed_s'), '.1f')} s, {fmt(metrics.get('car_s_per_image'), '.3f')} "
             "s of CaR per image"),
            ("date", str(metrics.get("date"))),
            ("run directory", str(run_dir))]


def scores_table(metrics: dict) -> str:
    v = verdict(metrics)
    view = view_of(metrics)
    rows = []
    for label, key, value in view.score_rows(metrics):
        paper = view.paper_value(metrics, key, v["paper"])
        delta = None if paper is None or value is None or not v["comparable"] else value - paper  # as the console
        rows.append(f'<tr><th>{esc(label)}</th><td data-key="{esc(key, True)}">{fmt(value)}</td>'
                    f"<td>{fmt(paper)}</td><td>{fmt(delta, '+.2f')}</td></tr>")
    if v["comparable"]:
        status = '<p class="ok">comparable with the published number</p>'
    else:
        status = f'<p class="warn">not comparable ({esc(v["reason"] or "see the run")})</p>'
    source = (metrics.get("published") or {}).get("source")
    note = f'<p class="note">published: {esc(source)}</p>' if source else ""
    return ("<table><tr><th>score</th><th>ours</th><th>paper</th><th>Δ</th></tr>" + "".join(rows)
            + "</table>" + status + note)


def per_class_table(metrics: dict) -> str:
    per_class = metrics.get("per_class_iou") or {}
    if not per_class:
        return ""
    rows = "".join(f'<tr><th>{esc(name)}</th><td data-key="per_class_iou/{esc(name, True)}">{fmt(iou)}</td></tr>'
                   for name, iou in sorted(per_class.items(), key=lambda kv: -(kv[1] if kv[1] is not None else -1)))
    return f"<details><summary>per-class IoU table</summary><table>{rows}</table></details>"


def figure_html(fig: dict, run_dir: Path) -> str:
    rel = Path(fig["path"]).relative_to(run_dir).as_posix()
    note = f'<figcaption>{esc(fig["note"])}</figcaption>' if fig["note"] else ""
    return (f'<figure><h3>{esc(fig["title"])}</h3><img src="{data_uri(fig["path"])}" data-file="{esc(rel, True)}" '
            f'alt="{esc(fig["title"], True)}">{note}</figure>')


def gallery_html(run_dir: Path) -> str:
    folder = run_dir / "overlays"
    overlays = sorted(folder.rglob("*.png"))  # ids with '/' (Cityscapes' city/stem) are sub-folders
    if not overlays:
        return "<p class=\"note\">no overlays (num_overlays=0)</p>"
    return "".join(f'<figure class="overlay"><img src="{data_uri(p)}" '
                   f'data-file="overlays/{esc(p.relative_to(folder).as_posix(), True)}" '
                   f'alt="{esc(p.relative_to(folder).with_suffix("").as_posix(), True)}"></figure>' for p in overlays)


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;background:#f4f5f7;color:#222}
main{max-width:1280px;margin:0 auto;padding:24px}
h1{font-size:1.5em;margin:0 0 16px} h2{font-size:1.15em;margin:0 0 12px} h3{font-size:1em;margin:0 0 8px}
.card{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.12);padding:16px 20px;margin:0 0 18px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:18px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:0} dt{color:#666} dd{margin:0}
table{border-collapse:collapse} th,td{padding:3px 12px;border-bottom:1px solid #e4e4e4;text-align:right}
th{text-align:left;font-weight:600}
.ok{color:#1a7f37;font-weight:600} .warn{color:#b35900;font-weight:600} .note{color:#666;font-size:.9em}
figure{margin:0} figure img{max-width:100%;height:auto;display:block} figcaption{color:#666;font-size:.85em}
.overlay{margin-bottom:14px}
"""


def render(metrics: dict, figures: list[dict], run_dir: Path) -> str:
    header = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in header_fields(metrics, run_dir))
    charts = "".join(f'<div class="card">{figure_html(f, run_dir)}</div>' for f in figures)
    title = f"CaR run report: {metrics.get('dataset')} {metrics.get('split') or ''}".strip()
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>
<body><main>
<h1>{esc(title)}</h1>
<div class="grid">
<section class="card"><h2>Run</h2><dl>{header}</dl></section>
<section class="card"><h2>Scores ({esc(metrics.get("unit_note") or "mIoU per averaging rule")})</h2>
{scores_table(metrics)}{per_class_table(metrics)}</section>
</div>
<div class="grid">{charts}</div>
<section class="card"><h2>Overlays</h2>{gallery_html(run_dir)}</section>
<p class="note">Generated by <code>python -m car.reporting.report_html {esc(run_dir)}</code> from metrics.json.</p>
</main></body></html>
"""


def write_report(run_dir: str | Path) -> Path:
    """Charts into <run_dir>/figures/ and <run_dir>/report.html; returns the report's path."""
    run_dir = Path(run_dir).resolve()
    metrics = load_metrics(run_dir)
    try:
        figures = make_figures(metrics, run_dir / FIGURES)
        page = render(metrics, figures, run_dir)
    except (TypeError, KeyError, ValueError, AttributeError, IndexError) as err:
        raise CarError(f"{run_dir / 'metrics.json'} does not have the fields and types a run writes "
                       f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'bad value'}): "
                       f"re-run the evaluation to write it again.") from None
    return write_text(run_dir / REPORT, page)


def write_report_safely(run_dir: str | Path) -> Path | None:
    """`write_report` for the end of a run: a drawing error costs the report, never the run."""
    try:
        return write_report(run_dir)
    except Exception as err:  # noqa: BLE001 (metrics.json is already written)
        log.warning("report.html not written (%s: %s); rebuild it with python -m car.reporting.report_html %s",
                    type(err).__name__, err, run_dir)
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m car.reporting.report_html", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a finished run's directory (holding metrics.json)")
    args = parser.parse_args(argv)
    try:
        print(write_report(args.run_dir))
    except CarError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
