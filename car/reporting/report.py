"""Compare reproduced numbers with expected ones: the paper table (results/published.yaml) or any
file of the same format (e.g. a synthetic benchmark's expected values).

    python -m car.reporting.report outputs/multirun/<time>                      # vs results/published.yaml
    python -m car.reporting.report <dir> --published results/shapes_expected.yaml

Every metrics.json under <dir> is one row. Its expected entry is found by the run's
`dataset.published_key` (e.g. `voc21`, `refcoco/testA`) in the file's `car.semantic` /
`car.referring` section; a file without a `car:` top level may hold those sections directly, or
just the rows of one section (the format of published.yaml's car.semantic). Runs of a peer method
(`method=sclip`, ...) are compared with published.yaml's `peers.<method>` rows. A row is a number or
a mapping with `miou` and an optional `tolerance` (points, default 1.0); runs refined with SAM
(`postprocess=sam*`) are compared with the row's `sam_miou` ("CaR + SAM"). Without --published,
results/published.yaml is used and a run's own stored `published` field is the fallback.

Prints a Markdown table (also written to <dir>/report.md, with <dir>/report.png: expected against
reproduced mIoU per row as grouped bars; for `experiment=paper_table`, the paper's tables).
Exit status: 0 when every run is within its tolerance, 1 when any run differs by more or has no
expected value (unless --allow-missing), 2 when no metrics.json is found.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from car.config import RESULTS_DIR
from car.metrics.schema import task_of
from car.reporting.results import method_section, sam_row, uses_sam
from car.reporting.sweep import collect_runs
from car.reporting.tables import fmt, markdown

DEFAULT_PUBLISHED = RESULTS_DIR / "published.yaml"  # the checkout's results/, or the installed package's copy
DEFAULT_TOLERANCE = 1.0


def load_expected(path: str | Path) -> dict:
    doc = yaml.safe_load(Path(path).read_text()) or {}
    return doc if isinstance(doc, dict) else {}


def expected_section(expected: dict, run: dict) -> dict:
    """published.yaml: the run's method's section (`car:` or `peers.<method>:`); any other expected
    file is one section, used as it is."""
    if "car" in expected or "peers" in expected:
        return method_section(expected, ((run.get("config") or {}).get("method") or {}).get("name", "car"))
    return expected


def lookup(expected: dict, task: str, key: str | None) -> dict | None:
    """The row for `key` in the task's section (or at top level, for a section-only file)."""
    if not key:
        return None
    for node in ([expected[task]] if isinstance(expected.get(task), dict) else []) + [expected]:
        for part in str(key).split("/"):
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, (int, float)) and not isinstance(node, bool):
            return {"miou": float(node)}
        if isinstance(node, dict) and isinstance(node.get("miou"), (int, float)):
            return node
    return None


def published_key(metrics: dict) -> str | None:
    return ((metrics.get("config") or {}).get("dataset") or {}).get("published_key")


def compare(runs: list[dict], expected: dict, use_stored: bool, default_tolerance: float) -> list[dict]:
    rows = []
    for run in runs:
        key = published_key(run)
        row = lookup(expected_section(expected, run), task_of(run).name, key)
        sam = uses_sam(run.get("config"))
        if sam:  # CaR + SAM runs are compared with the paper's SAM rows
            row = sam_row(row)
        if row is None and use_stored and isinstance(run.get("published"), dict):
            row = run["published"] if run["published"].get("miou") is not None else None
        got = run.get("miou")
        want = None if row is None else float(row["miou"])
        tol = float(row.get("tolerance", default_tolerance)) if row else default_tolerance
        if want is None or got is None:
            status, delta = "missing", None
        else:
            delta = got - want
            status = "ok" if abs(delta) <= tol + 1e-9 else "FAIL"
        backbone = run.get("backbone")
        rows.append({"run": run["_run"], "dataset": run.get("dataset"), "key": (key or "—") + (" + SAM" if sam else ""),
                     "backbone": backbone.get("name") if isinstance(backbone, dict) else backbone,
                     "images": run.get("num_images"), "miou": got, "expected": want, "delta": delta,
                     "tolerance": tol, "status": status})
    return sorted(rows, key=lambda r: (r["dataset"] or "", r["key"], r["run"]))


def table(rows: list[dict]) -> str:
    header = ["run", "dataset", "key", "backbone", "images", "mIoU", "expected", "Δ", "tolerance", "status"]
    return markdown(header, [[r["run"], r["dataset"], r["key"], r["backbone"], fmt(r["images"], "d"), fmt(r["miou"]),
                              fmt(r["expected"]), fmt(r["delta"], "+.2f"), f"{r['tolerance']:g}", r["status"]]
                             for r in rows])


def chart(rows: list[dict], path: Path) -> Path:
    """Grouped bars per row (its key, plus the run where keys repeat): expected and reproduced mIoU."""
    from car.reporting import plots

    keys = [r["key"] for r in rows]
    labels = [k if keys.count(k) == 1 else f"{k} ({r['run']})" for k, r in zip(keys, rows)]
    series = {"expected (published)": [r["expected"] for r in rows], "reproduced": [r["miou"] for r in rows]}
    return plots.grouped_bars(labels, series, path, title="expected against reproduced mIoU")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m car.reporting.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs_dir", help="a multirun directory (or one run directory)")
    parser.add_argument("--published", default=None,
                        help=f"expected values (default {DEFAULT_PUBLISHED})")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help="points allowed for rows without their own `tolerance` (default 1.0)")
    parser.add_argument("--allow-missing", action="store_true", help="runs without an expected value do not fail")
    args = parser.parse_args(argv)

    runs = collect_runs(args.runs_dir)
    if not runs:
        print(f"error: no metrics.json under {args.runs_dir}", file=sys.stderr)
        return 2
    path = Path(args.published) if args.published else DEFAULT_PUBLISHED
    if not path.is_file():
        print(f"error: expected-values file {path} not found", file=sys.stderr)
        return 2
    rows = compare(runs, load_expected(path), use_stored=args.published is None, default_tolerance=args.tolerance)
    text = table(rows)
    failed = [r for r in rows if r["status"] == "FAIL" or (r["status"] == "missing" and not args.allow_missing)]
    verdict = (f"{len(failed)} of {len(rows)} runs outside tolerance or without an expected value" if failed
               else f"all {len(rows)} runs within tolerance")
    print(text)
    print(f"\nexpected values: {path}\n{verdict}")
    (Path(args.runs_dir) / "report.md").write_text(f"# Report vs {path}\n\n{text}\n\n{verdict}\n")
    print(f"wrote {chart(rows, Path(args.runs_dir) / 'report.png')}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
