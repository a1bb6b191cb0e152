"""Screenshot a run's report.html in a headless browser (the README's results/report.png).

    python scripts/screenshot_report.py outputs/evaluate/shapes/<time> [--out results/report.png]

Needs Chromium (Debian: `apt-get install -y chromium`); the report opens from the file, offline.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def browser() -> str:
    for name in BROWSERS:
        if shutil.which(name):
            return shutil.which(name)
    raise SystemExit(f"error: no headless browser found ({', '.join(BROWSERS)}); Debian: apt-get install -y chromium")


def screenshot(report: str | Path, out: str | Path, width: int = 1280, height: int = 2000) -> Path:
    """`report` (a report.html, or the run directory holding it) rendered at width × height px into `out`."""
    report, out = Path(report).resolve(), Path(out).resolve()
    if report.is_dir():
        report = report / "report.html"
    if not report.is_file():
        raise SystemExit(f"error: {report} not found (python -m car.reporting.report_html RUN_DIR writes it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:  # a fresh profile: no lock shared with other runs
        cmd = [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
               "--hide-scrollbars", "--run-all-compositor-stages-before-draw", "--virtual-time-budget=10000",
               f"--user-data-dir={profile}", f"--window-size={width},{height}",
               f"--screenshot={out}", report.as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 or not out.is_file():
        raise SystemExit(f"error: the browser did not write {out}: {proc.stderr[-1500:]}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", help="report.html or the run directory holding it")
    parser.add_argument("--out", default="results/report.png")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=2000)
    args = parser.parse_args(argv)
    print(screenshot(args.report, args.out, args.width, args.height))
    return 0


if __name__ == "__main__":
    sys.exit(main())
