"""Steps of `benchmarks/device_check.sh` that are Python (see that script for the whole check).

    python benchmarks/device_check.py golden --device cuda --out DIR      # golden parity -> DIR/golden_parity.json
    python benchmarks/device_check.py summary --out DIR --steps FILE ...  # -> DIR/device_check.json

golden: the golden cases of the official implementation (../shared/golden, or $CAR_GOLDEN_DIR) run
end to end on the device, in fp32 and in the fp16-weights mode (Q32). The official runs were on
the CPU in float32, and tests/test_golden.py shows that our CPU run makes the same decisions; here
the question is whether the device run does too (fp32: it must; fp16_weights: the golden README
does not promise it, the number of cases that keep every decision is reported).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DECISION_STAGES = ("steps", "query texts", "kept queries")


def golden(args) -> int:
    import torch

    from car.fidelity import CASES, GoldenCase, check_case, golden_dir, golden_weights

    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # float32 means float32
    root = golden_dir()
    out = {"device": args.device, "tf32": False, "precisions": {}}
    path = args.out / "golden_parity.json"
    if root is None:
        out["skipped"] = "golden data not found (../shared/golden or $CAR_GOLDEN_DIR)"
        path.write_text(json.dumps(out, indent=1))
        print(out["skipped"])
        return 0
    weights = golden_weights(root, Path(tempfile.gettempdir()) / "car-golden")
    for precision in args.precisions.split(","):
        rows = []
        for name in args.cases or list(CASES):
            start = time.perf_counter()
            try:
                checks = check_case(GoldenCase(root / f"{name}.npz"), weights, modes=("config", "E2E"),
                                    device=args.device, precision=precision)
                rows.append(case_row(name, checks, time.perf_counter() - start))
            except Exception as err:  # report and go on with the next case
                rows.append({"case": name, "error": f"{type(err).__name__}: {err}"})
            print(f"{precision} {json.dumps(rows[-1])[:300]}", flush=True)
            ok = [r for r in rows if r.get("decisions_identical")]
            out["precisions"][precision] = {"cases": rows, "cases_with_identical_decisions": len(ok),
                                            "cases_all_checks_pass": sum(1 for r in ok if not r["failed"]),
                                            "cases_run": len(rows)}
            path.write_text(json.dumps(out, indent=1))  # after every case: a step stopped at its limit keeps these
    fp32 = out["precisions"].get("fp32")
    return 0 if fp32 is None or fp32["cases_with_identical_decisions"] == fp32["cases_run"] else 1


def case_row(name: str, checks, seconds: float) -> dict:
    """One case: are the decisions identical, which checks failed, the worst value of each float measure."""
    decisions = [c for c in checks if c.stage in DECISION_STAGES]
    worst = {}
    for c in checks:
        if c.kind in ("abs", "rel", "agree") and c.value is not None:
            key = f"{c.stage} ({c.kind})"
            worst[key] = (min if c.kind == "agree" else max)(worst.get(key, c.value), c.value)
    return {"case": name, "checks": len(checks), "failed": [c.describe() for c in checks if not c.ok],
            "decisions_identical": bool(decisions) and all(c.ok for c in decisions), "worst": worst,
            "seconds": round(seconds, 1)}


def junit_summary(path: Path) -> dict:
    """pytest's junit XML -> counts and the tests that did not pass."""
    if not path.is_file():
        return {"missing": str(path.name)}
    root = ET.parse(path).getroot()
    cases = root.iter("testcase")
    summary = {"passed": 0, "failed": 0, "skipped": 0, "tests": []}
    for case in cases:
        name = f"{case.get('classname', '')}::{case.get('name')}"
        status, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                status, message = "failed", (child.get("message") or "")[:600]
            elif child.tag == "skipped":
                status, message = "skipped", (child.get("message") or "")[:200]
        summary[status] += 1
        summary["tests"].append({"test": name, "status": status, "seconds": float(case.get("time", 0)),
                                 **({"message": message} if message else {})})
    return summary


def summary(args) -> int:
    import platform

    steps = [json.loads(line) for line in Path(args.steps).read_text().splitlines() if line.strip()]
    gpu_tests = junit_summary(Path(args.junit)) if args.junit else None
    golden_path = args.out / "golden_parity.json"
    parity = json.loads(golden_path.read_text()) if golden_path.is_file() else None
    for step in steps:  # one line of result per step, for the table in benchmarks.md
        if step["name"] == "gpu_tests" and gpu_tests and "missing" not in gpu_tests:
            step["result"] = (f"{gpu_tests['passed']} passed, {gpu_tests['failed']} failed, "
                              f"{gpu_tests['skipped']} skipped")
        elif step["name"] == "golden" and parity:
            step["result"] = parity.get("skipped") or "; ".join(
                f"{p}: decisions identical in {v['cases_with_identical_decisions']}/{v['cases_run']} cases, "
                f"all checks pass in {v['cases_all_checks_pass']}" for p, v in parity["precisions"].items())
        elif step["name"].startswith("bench"):
            names = sorted(p.stem for p in (args.out / "benchmarks").glob("*.json"))
            step["result"] = ", ".join(names)
    try:
        import torch

        torch_version = torch.__version__
        device_name = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "CPU"
    except Exception:  # the summary is written even when torch is broken
        torch_version, device_name = None, None
    report = {"command": args.command, "device": args.device, "device_name": device_name, "size": args.size,
              "limit_s": args.limit_s,
              "seconds": args.total_s if args.total_s is not None else sum(s["seconds"] for s in steps),
              "torch": torch_version,
              "python": sys.version.split()[0], "steps": steps, "gpu_tests": gpu_tests, "golden_parity": parity,
              "files": sorted(str(p.relative_to(args.out)) for p in args.out.rglob("*") if p.is_file()),
              "ok": all(s["status"] == "ok" for s in steps)}
    (args.out / "device_check.json").write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k not in ("gpu_tests", "golden_parity")}, indent=1))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    g = sub.add_parser("golden")
    g.add_argument("--device", default="cuda")
    g.add_argument("--out", type=Path, required=True)
    g.add_argument("--precisions", default="fp32,fp16_weights")
    g.add_argument("--cases", nargs="*")
    s = sub.add_parser("summary")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--steps", required=True)
    s.add_argument("--junit", default="")
    s.add_argument("--device", default="cpu")
    s.add_argument("--size", default="tiny")
    s.add_argument("--limit-s", type=int, default=480)
    s.add_argument("--total-s", type=float, default=None, help="wall time so far, setup included")
    s.add_argument("--command", default=os.environ.get("CAR_CHECK_COMMAND", "benchmarks/device_check.sh"))
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    return golden(args) if args.what == "golden" else summary(args)


if __name__ == "__main__":
    sys.exit(main())
