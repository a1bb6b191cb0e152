"""`python -m car.fidelity [--out results/fidelity.md] [--cases c1_032_default ...] [--render-only]`.

Runs every golden case (config, teacher-forced and end-to-end checks), writes the checks to
`<out>.json` and renders `<out>` from it. Exit code 1 if any check fails, 2 without golden data.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path

from car.config import REPO_ROOT
from car.fidelity import CASES, GoldenCase, check_case, golden_dir, golden_weights
from car.fidelity.report import render


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "results" / "fidelity.md")
    ap.add_argument("--cases", nargs="*", default=list(CASES))
    ap.add_argument("--weights-dir", type=Path, default=Path(tempfile.gettempdir()) / "car-golden")
    ap.add_argument("--render-only", action="store_true", help="re-render the .md from the existing .json")
    args = ap.parse_args(argv)
    json_path = args.out.with_suffix(".json")
    if args.render_only:
        args.out.write_text(render(json.loads(json_path.read_text())))
        print(f"wrote {args.out}")
        return 0
    root = golden_dir()
    if root is None:
        print("error: golden data not found (../shared/golden beside the repository, or CAR_GOLDEN_DIR).",
              file=sys.stderr)
        return 2
    import cv2
    import numpy as np
    import torch

    start = time.perf_counter()
    weights = golden_weights(root, args.weights_dir)
    checks = []
    for name in args.cases:
        t = time.perf_counter()
        found = check_case(GoldenCase(root / f"{name}.npz"), weights)
        bad = sum(not c.ok for c in found)
        print(f"{name}: {len(found)} checks, {bad} failed, {time.perf_counter() - t:.1f} s", flush=True)
        checks += found
    meta = {"date": datetime.date.today().isoformat(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "opencv": cv2.__version__, "numpy": np.__version__,
            "seconds": time.perf_counter() - start, "cases": list(args.cases)}
    payload = {"meta": meta, "checks": [c.as_dict() for c in checks]}
    json_path.write_text(json.dumps(payload, indent=1) + "\n")
    args.out.write_text(render(payload))
    print(f"wrote {args.out} and {json_path}")
    return 1 if any(not c.ok for c in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
