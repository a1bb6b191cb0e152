"""``python -m car.metrics.davis`` / ``car-davis``: score a DAVIS-layout results folder.

    python -m car.metrics.davis --davis-root DAVIS --results RESULTS [--task unsupervised] [--set val]
        [--csv-dir DIR] [--json FILE]

Prints the official ``evaluation_method.py``'s two tables: the global row (J&F-Mean, J-Mean,
J-Recall, J-Decay, F-Mean, F-Recall, F-Decay) and one row per (sequence, object) with its J-Mean
and F-Mean. ``--csv-dir`` writes them as the toolkit does (``global_results-<set>.csv`` and
``per-sequence_results-<set>.csv``, three decimals); ``--json`` writes every score and the
per-frame J and F. The default task is the unsupervised one (Ref-DAVIS17's protocol); the
toolkit's own default is semi-supervised, so name it when you mean it. Bad input: one sentence,
exit code 2.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import time
from pathlib import Path

from car.metrics.davis.folder import DavisInputError, score_folder
from car.metrics.davis.protocol import GLOBAL_KEYS, TASKS

SEQUENCE_COLUMNS = ("Sequence", "J-Mean", "F-Mean")


def table(columns: tuple[str, ...], rows: list[tuple]) -> str:
    """Right-aligned text table, floats with six decimals (as pandas prints them)."""
    cells = [[f"{v:.6f}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = [" ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += [" ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


def global_row(scores: dict) -> tuple[float, ...]:
    return tuple(scores[k] for k in GLOBAL_KEYS)


def sequence_rows(scores: dict) -> list[tuple]:
    return [(name, s["J"], s["F"]) for name, s in scores["per_object"].items()]


def _write_text(path: Path, text: str) -> None:
    """Whole file or nothing: written beside, then renamed over."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    os.replace(partial, path)


def _csv(columns: tuple[str, ...], rows: list[tuple]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([[f"{v:.3f}" if isinstance(v, float) else v for v in row] for row in rows])
    return out.getvalue()


def write_outputs(scores: dict, per_frame: dict, split: str, csv_dir: Path | None, json_path: Path | None) -> None:
    if csv_dir is not None:
        _write_text(csv_dir / f"global_results-{split}.csv", _csv(GLOBAL_KEYS, [global_row(scores)]))
        _write_text(csv_dir / f"per-sequence_results-{split}.csv", _csv(SEQUENCE_COLUMNS, sequence_rows(scores)))
    if json_path is not None:
        frames = {name: {m: values.tolist() for m, values in v.items()} for name, v in per_frame.items()}
        _write_text(json_path, json.dumps({**scores, "per_frame": frames}, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="car-davis", description="Score a results folder in DAVIS layout with the "
                                     "DAVIS-2017 measures (J, F, J&F), as the official toolkit does.")
    parser.add_argument("--davis-root", required=True, type=Path, help="DAVIS-2017 root (ImageSets/, Annotations*/)")
    parser.add_argument("--results", required=True, type=Path, help="<results>/<sequence>/<frame>.png")
    parser.add_argument("--task", choices=TASKS, default="unsupervised",
                        help="unsupervised (default; Ref-DAVIS17) or semi-supervised (the toolkit's default)")
    parser.add_argument("--set", dest="split", default="val", help="ImageSets/2017/<set>.txt (default: val)")
    parser.add_argument("--max-objects", type=int, default=20, help="most predicted ids (unsupervised; default 20)")
    parser.add_argument("--csv-dir", type=Path, help="write the toolkit's two CSV files here")
    parser.add_argument("--json", type=Path, help="write all scores and the per-frame J and F here")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        measures = score_folder(args.davis_root, args.results, args.task, args.split, args.max_objects)
        scores = measures.compute()
        write_outputs(scores, measures.per_frame, args.split, args.csv_dir, args.json)
    except (DavisInputError, ValueError, OSError) as err:
        print(f"car-davis: {err}", file=sys.stderr)
        return 2
    print(f"--------------------------- Global results for {args.split} ---------------------------")
    print(table(GLOBAL_KEYS, [global_row(scores)]))
    print(f"\n---------- Per sequence results for {args.split} ----------")
    print(table(SEQUENCE_COLUMNS, sequence_rows(scores)))
    print(f"\nTotal time: {time.perf_counter() - start:.1f} s")
    return 0
