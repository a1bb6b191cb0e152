"""Summarise a sweep: every run's metrics.json under a multirun directory, sorted by mIoU.

    python -m car.reporting.sweep outputs/multirun/2024-05-01_12-00-00 [--top 20]

Writes `sweep_summary.md` and `sweep_summary.csv` into that directory and prints the Markdown.
Columns: the run's sub-directory, dataset, backbone, mIoU, η, θ, λ and every other config value
that differs between runs (read from the resolved config stored in metrics.json). The run whose
η/θ/λ equal its dataset's paper values (conf/dataset/<name>.yaml) is marked `← paper`.

Plots (car/reporting/plots.py): `sweep_plot.png`, mIoU against each swept threshold (one line per
combination of the other settings, the paper's setting starred); for an Optuna sweep
(`hparams_search=optuna`) also Optuna's own `optuna_history.png` and `optuna_importance.png`,
rebuilt from the runs' metrics.json (skipped, with a note, where Optuna's matplotlib
visualisation is not installed).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import warnings
from functools import cache
from pathlib import Path

from omegaconf import OmegaConf

from car.config import flatten
from car.errors import CarError
from car.metrics.schema import check_record
from car.settings import THRESHOLD_KEYS

SWEPT = THRESHOLD_KEYS  # η, θ, λ
IGNORED = ("output_dir",)  # differs between runs by construction
IGNORED_GROUPS = ("logger",)  # where results are logged, not what they are
GROUPS = ("dataset", "backbone")  # shown by name: their other keys follow from the name
PAPER_MARK = "← paper"


def collect_runs(root: str | Path) -> list[dict]:
    """Every metrics.json below `root` (a run dir or a multirun dir), with its relative path."""
    root = Path(root)
    runs = []
    for path in sorted(root.rglob("metrics.json")):
        try:
            metrics = check_record(json.loads(path.read_text()), str(path))
        except (OSError, json.JSONDecodeError, CarError) as err:
            print(f"warning: skipping {path}: {err}", file=sys.stderr)
            continue
        metrics["_run"] = str(path.parent.relative_to(root)) or "."
        runs.append(metrics)
    return runs


def config_cells(run: dict) -> dict:
    """A run's resolved config as {"a.b": value}, lists as JSON text (table cells, CSV)."""
    return {k: json.dumps(v) if isinstance(v, list) else v for k, v in flatten(run.get("config") or {}).items()}


def differing_keys(configs: list[dict]) -> list[str]:
    keys = sorted(set().union(*configs)) if configs else []
    out = []
    for key in keys:
        if key in IGNORED or key in SWEPT or key.split(".")[0] in GROUPS + IGNORED_GROUPS:
            continue
        values = {json.dumps(c.get(key, "<absent>"), sort_keys=True, default=str) for c in configs}
        if len(values) > 1:
            out.append(key)
    return out


@cache
def paper_values(dataset: str) -> tuple[float, float, float] | None:
    """(η, θ, λ) that conf/dataset/<dataset>.yaml sets (the paper's), or None if unknown."""
    from car.config import compose

    try:
        cfg = compose([f"dataset={dataset}"])
    except Exception:
        return None
    return tuple(float(OmegaConf.select(cfg, key)) for key in SWEPT)


def is_paper_setting(flat: dict) -> bool:
    name = flat.get("dataset.name")
    config_name = flat.get("_config_name") or name
    paper = paper_values(str(config_name)) if config_name else None
    if paper is None:
        return False
    try:
        values = tuple(float(flat[k]) for k in SWEPT)
    except (KeyError, TypeError, ValueError):
        return False
    return all(abs(a - b) < 1e-9 for a, b in zip(values, paper))


def dataset_config_name(metrics: dict) -> str | None:
    """conf/dataset/<name>.yaml's file name (differs from dataset.name for refcoco_plus)."""
    name = metrics.get("dataset")
    loader = ((metrics.get("config") or {}).get("dataset") or {}).get("loader") or {}
    if loader.get("dataset") == "refcoco+":
        return "refcoco_plus"
    return name


def cell(value) -> str:
    """A config value in the sweep table: floats to 4 significant digits, — for none."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def summary_rows(runs: list[dict]) -> tuple[list[str], list[list]]:
    flats = [config_cells(r) for r in runs]
    extra = differing_keys(flats)
    columns = ["run", "dataset", "backbone", "images", "mIoU", *(short_key(k) for k in SWEPT), *extra, "paper"]
    rows = []
    for run, flat in sorted(zip(runs, flats), key=lambda rf: -(rf[0].get("miou") if rf[0].get("miou") is not None
                                                                else float("-inf"))):
        flat["_config_name"] = dataset_config_name(run)
        backbone = run.get("backbone")
        rows.append([run["_run"], run.get("dataset"), backbone.get("name") if isinstance(backbone, dict) else backbone,
                     run.get("num_images"), run.get("miou"), *(flat.get(k) for k in SWEPT),
                     *(flat.get(k) for k in extra), PAPER_MARK if is_paper_setting(flat) else ""])
    return columns, rows


def markdown(columns: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [f"{v:.2f}" if c == "mIoU" and isinstance(v, (int, float)) else cell(v) for c, v in zip(columns, row)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summarize(root: str | Path, top: int | None = None) -> tuple[str, Path, Path]:
    root = Path(root)
    runs = collect_runs(root)
    if not runs:
        raise SystemExit(f"error: no metrics.json under {root}")
    columns, rows = summary_rows(runs)
    md_path, csv_path = root / "sweep_summary.md", root / "sweep_summary.csv"
    text = markdown(columns, rows[:top] if top else rows)
    md_path.write_text(f"# Sweep summary: {root}\n\n{len(rows)} runs, sorted by mIoU.\n\n{text}\n")
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows([["" if v is None else v for v in row] for row in rows])
    return text, md_path, csv_path


def short_key(key: str) -> str:
    return key.split(".", 1)[1] if key in SWEPT else key


def sweep_points(runs: list[dict]) -> tuple[list[str], list[dict]]:
    """(swept keys: the thresholds with more than one value, points for `plots.sweep`)."""
    flats = [config_cells(r) for r in runs]
    swept = [k for k in SWEPT if len({f.get(k) for f in flats if f.get(k) is not None}) > 1]
    extra = differing_keys(flats)
    points = []
    for run, flat in zip(runs, flats):
        flat["_config_name"] = dataset_config_name(run)
        values = {k: flat.get(k) for k in swept}
        others = {key: ", ".join(f"{short_key(k)}={cell(flat.get(k))}" for k in swept + extra if k != key)
                  for key in swept}
        points.append({"values": values, "others": others, "miou": run.get("miou"), "paper": is_paper_setting(flat)})
    return swept, points


def plot_sweep(root: str | Path, runs: list[dict] | None = None) -> tuple[list[Path], list[str]]:
    """The sweep's plots in `root`: ([paths written], [notes on plots left out])."""
    from car.reporting import plots

    root = Path(root)
    runs = collect_runs(root) if runs is None else runs
    swept, points = sweep_points(runs)
    paths, notes = [], []
    if swept:
        datasets = sorted({str(r.get("dataset")) for r in runs})
        images = sorted({str(r.get("num_images")) for r in runs})
        title = (f"{', '.join(datasets)} ({'/'.join(images)} images, {len(runs)} runs): "
                 "mIoU against each swept threshold")
        paths.append(plots.sweep(points, swept, root / "sweep_plot.png", title=title))
    else:
        notes.append("no threshold (car.eta/theta/lambda) takes more than one value: no sweep plot")
    if is_optuna_sweep(root, runs):
        written, why = optuna_plots(root, runs)
        paths += written
        notes += why
    return paths, notes


def hydra_config(run: dict, root: Path) -> dict:
    """The run's .hydra/hydra.yaml (the sweeper's settings), or {}."""
    import yaml

    path = root / run["_run"] / ".hydra" / "hydra.yaml"
    try:
        return (yaml.safe_load(path.read_text()) or {}).get("hydra") or {}
    except (OSError, yaml.YAMLError):
        return {}


def is_optuna_sweep(root: Path, runs: list[dict]) -> bool:
    if (root / "optimization_results.yaml").is_file():
        return True
    return any("optuna" in str((hydra_config(r, root).get("sweeper") or {}).get("_target_", "")) for r in runs[:1])


def search_space(root: Path, runs: list[dict], keys: list[str]) -> dict[str, tuple[float, float]]:
    """(low, high) per key: the sweeper's `interval(low, high)` where recorded, else the values seen."""
    import re

    params = ((hydra_config(runs[0], root).get("sweeper") or {}).get("params") or {}) if runs else {}
    space = {}
    for key in keys:
        match = re.fullmatch(r"\s*interval\(\s*([-\d.eE+]+)\s*,\s*([-\d.eE+]+)\s*\)\s*", str(params.get(key, "")))
        seen = [float(config_cells(r)[key]) for r in runs]
        space[key] = (float(match[1]), float(match[2])) if match else (min(seen), max(seen))
    return space


def optuna_plots(root: Path, runs: list[dict]) -> tuple[list[Path], list[str]]:
    """Optuna's optimisation history and parameter importances, from a study rebuilt from the runs
    (trials in job order, values = mIoU)."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # Optuna draws with pyplot
        import matplotlib.pyplot as plt
        import optuna
        from optuna.visualization import matplotlib as optuna_mpl
    except ImportError as err:
        return [], [f"Optuna's matplotlib visualisation is not installed ({err}): no Optuna plots"]
    runs = sorted((r for r in runs if r.get("miou") is not None),
                  key=lambda r: (int(r["_run"]) if str(r["_run"]).isdigit() else 1 << 30, str(r["_run"])))
    keys = [k for k in SWEPT if all(config_cells(r).get(k) is not None for r in runs)]
    if not runs or not keys:
        return [], ["no Optuna trials with thresholds and an mIoU: no Optuna plots"]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # create_trial, add_trial and the plots are "experimental" in Optuna 2; its plots set a global style
    with warnings.catch_warnings(), matplotlib.rc_context():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return draw_optuna(root, study_from_runs(optuna, root, runs, keys), optuna_mpl, plt)


def study_from_runs(optuna, root: Path, runs: list[dict], keys: list[str]):
    """An in-memory study holding one finished trial per run (params: the thresholds, value: mIoU)."""
    uniform = getattr(optuna.distributions, "FloatDistribution", None) or optuna.distributions.UniformDistribution
    distributions = {k: uniform(*search_space(root, runs, [k])[k]) for k in keys}  # (FloatDistribution: Optuna 3)
    study = optuna.create_study(direction="maximize", study_name=root.name)
    for run in runs:
        flat = config_cells(run)
        study.add_trial(optuna.trial.create_trial(params={k: float(flat[k]) for k in keys},
                                                  distributions=distributions, value=float(run["miou"])))
    return study


def draw_optuna(root: Path, study, optuna_mpl, plt) -> tuple[list[Path], list[str]]:
    paths, notes = [], []
    for name, draw in (("optuna_history.png", optuna_mpl.plot_optimization_history),
                       ("optuna_importance.png", optuna_mpl.plot_param_importances)):
        try:
            ax = draw(study)
        except Exception as err:  # noqa: BLE001 (Optuna 2's importances need scikit-learn; too few trials)
            notes.append(f"{name}: Optuna could not draw it ({type(err).__name__}: {err})")
            continue
        figure = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
        figure.set_size_inches(7, 4.2)
        figure.tight_layout()
        figure.savefig(root / name, dpi=110)
        plt.close(figure)
        paths.append(root / name)
    return paths, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m car.reporting.sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("multirun_dir", help="a Hydra multirun (sweep) directory")
    parser.add_argument("--top", type=int, default=None, help="print only the best N runs (files keep all)")
    args = parser.parse_args(argv)
    text, md_path, csv_path = summarize(args.multirun_dir, args.top)
    figures, notes = plot_sweep(args.multirun_dir)
    print(text)
    print(f"\nwrote {md_path} and {csv_path}")
    for path in figures:
        print(f"wrote {path}")
    for note in notes:
        print(f"note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
