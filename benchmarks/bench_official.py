"""CaR against the official code, on the same images, classes, weights and threads: one command.

    bash ../shared/oracle/setup.sh            # once: the official code's venv (prints its python)
    python benchmarks/bench_official.py       # ~6 min on a quiet 2-core machine
    python benchmarks/bench_official.py --cases small --parts ours --images 3    # ours only, official kept

For each case of benchmarks/cases.py (`voc20`: the 500x334 VOC image 2007_000129 with the 20 VOC
query strings; `small`: VOC 2007_000032 at 224 px with 4 classes; official VOC settings):

* ours: `benchmarks/evaluation_path.py` in a fresh process, CaR as `evaluate.py dataset=voc
  backbone=vitb16` builds it (CRF included), --images times on the image: image 1 is the first
  image in a new process (its text embeddings come from the on-disk cache, which a first, untimed
  process filled), images 2.. the steady state; per stage, against the stage's FLOP floor
  (benchmarks/floors.py) at the matmul speed measured in this run;
* official: `../shared/oracle/run_oracle.py` (the official code's evaluation path) on the same
  image and classes; its `inference` time is its per-image time (it embeds every text anew for
  every image);
* `car-segment` on the 500-px image, cold: a new process with imports, model load and one image.

Both load the same random ViT-B/16 (the golden folder's make_weights.py, written once as an
OpenAI-format `.pt`) for both CLIPs; both run with --threads threads. Writes
results/benchmarks/official_<device>.json (load average and threads included) and renders
results/benchmarks.md (`benchmarks/report.py`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.cases import CASES, VOC_QUERIES
from benchmarks.floors import floors, matmul_gflops

ORACLE = REPO.parent / "shared" / "oracle" / "run_oracle.py"
DEFAULT_ORACLE_PY = Path(os.environ.get("TMPDIR") or tempfile.gettempdir()) / "car-oracle-venv" / "bin" / "python"


def child_env(threads: int) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    return env


def run_ours(case: str, weights: Path, work: Path, images: int, threads: int, stages: bool = True) -> dict:
    cmd = [sys.executable, str(REPO / "benchmarks" / "evaluation_path.py"), "--case", case, "--weights", str(weights),
           "--cache-dir", str(work / "cache"), "--images", str(images), "--threads", str(threads)]
    cmd += [] if stages else ["--no-stages"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=child_env(threads), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"our benchmark process failed: {proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_wall_s"] = time.perf_counter() - start
    return out


def run_official(case: str, python: Path, weights: Path, work: Path, threads: int) -> dict:
    c = CASES[case]
    cmd = [str(python), str(ORACLE), "--ckpt", str(weights), "--config", "voc", "--threads", str(threads),
           "--long_side", str(c["long_side"]), "--image", str(c["image"]), "--sep", "|",
           "--classes", "|".join(c["oracle_classes"]), "--out", str(work / f"official_{case}.npz")]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)},
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    match = re.search(r"runtime: build ([\d.]+)s, inference ([\d.]+)s", proc.stdout)
    if proc.returncode != 0 or not match:
        raise SystemExit(f"the official code failed ({proc.returncode}): {proc.stderr[-3000:]}")
    steps = len(re.findall(r"^step \d+:", proc.stdout, flags=re.MULTILINE))
    return {"load_average_after": [round(x, 2) for x in os.getloadavg()],
            "command": " ".join(cmd[1:]).replace(str(REPO.parent), ".."), "build_s": float(match[1]),
            "inference_s": float(match[2]), "process_wall_s": wall, "steps": steps}


def run_segment(weights: Path, work: Path, threads: int) -> dict:
    """car-segment on the VOC image with the 20 VOC query strings, cold: the command's whole wall time."""
    image = CASES["voc20"]["image"]
    out = work / "segment"
    cmd = [sys.executable, "-m", "car.apps.segment", str(image), "--out", str(out), "--overwrite", "--profile", "voc",
           "--backbone", "vitb16", "--weights", str(weights), "--set", f"paths.cache_dir={work / 'cache'}"]
    for q in VOC_QUERIES:
        cmd += ["--text", q]
    runs = []
    for _ in range(2):  # the first fills the text cache (as any earlier call would have), the second is timed
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=child_env(threads), capture_output=True, text=True, cwd=work, check=False)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"car-segment failed: {proc.stderr[-3000:]}")
        runs.append(wall)
    record = json.loads((out / f"{image.stem}.json").read_text())
    t = record["timings"]
    image_s = t["total"] + t["write"]
    return {"command": "car-segment " + " ".join(cmd[3:]).replace(str(REPO.parent), ".."),
            "wall_s": runs[1], "first_call_wall_s": runs[0], "model_load_s": record["model_load_seconds"],
            "image_s": image_s, "imports_and_startup_s": runs[1] - record["model_load_seconds"] - image_s,
            "timings": t}


def empty_text_cache(work: Path) -> None:
    """Remove the on-disk text embeddings under `work` (an earlier benchmark run leaves them warm)."""
    shutil.rmtree(work / "cache" / "text_embeddings", ignore_errors=True)


def summarise_case(case: str, ours: dict, primed: dict, gflops: float) -> dict:
    rows = ours["images"]
    cold, steady = rows[0]["seconds"], statistics.median(r["seconds"] for r in rows[1:])
    stage_names = list(rows[1]["stages_s"])
    steady_stages = {k: statistics.median(r["stages_s"].get(k, 0.0) for r in rows[1:]) for k in stage_names}
    floor = floors(ours["image_hw"], rows[-1]["live_per_step"], gflops)
    out = {"case": case, "describe": CASES[case]["describe"], "image_hw": ours["image_hw"],
           "ours": {"first_image_s": cold, "steady_s_per_image": steady, "cold_over_steady": cold / steady,
                    "first_image_text_cache_cold_s": primed["images"][0]["seconds"],
                    "imports_s": ours["imports_s"], "build_s": ours["build_s"], "images": rows,
                    "steady_stages_s": steady_stages, "first_image_stages_s": rows[0]["stages_s"],
                    "text_disk_hits": ours["text_disk_hits"], "label_ids": ours["label_ids"],
                    "steps": rows[-1]["steps"], "live_per_step": rows[-1]["live_per_step"],
                    "same_labels_every_image": all(r["same_labels_as_first"] for r in rows)},
           "floors": {k: {**v, "measured_s": steady_stages.get(k)} for k, v in floor.items()}}
    return out


def add_ratios(entry: dict) -> None:
    """The official per-image time over ours (steady state, first image), when both were measured."""
    if "official" in entry and "ours" in entry:
        official = entry["official"]["inference_s"]
        entry["speedup_steady"] = official / entry["ours"]["steady_s_per_image"]
        entry["speedup_first_image"] = official / entry["ours"]["first_image_s"]


def machine(threads: int) -> dict:
    import torch

    return {"platform": platform.platform(), "processor": platform.processor(), "torch": torch.__version__,
            "threads": threads, "cpu_count": os.cpu_count(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


PARTS = ("ours", "official", "segment")


def combine(paths: list[Path], out: Path, no_report: bool) -> None:
    """One report from part runs (e.g. the official code timed while ours ran elsewhere): each part
    keeps the time and load average of the run that measured it; ratios recomputed."""
    merged: dict = {}
    for path in paths:
        r = json.loads(Path(path).read_text())
        if not merged:
            merged = {**r, "cases": {}, "parts": {}, "combined_from": []}
        merged["combined_from"].append({"command": r["command"].strip(), "machine": r["machine"],
                                        "parts": r.get("parts", {})})
        merged["parts"].update(r.get("parts", {}))
        if "segment" in r.get("parts", {}):
            merged["segment"] = r["segment"]
        if "ours" in r.get("parts", {}):
            merged["matmul_gflops"] = r["matmul_gflops"]
        for case, entry in r["cases"].items():
            into = merged["cases"].setdefault(case, {})
            into.update({k: v for k, v in entry.items() if k in ("official",) or "ours" in r.get("parts", {})})
    for entry in merged["cases"].values():
        add_ratios(entry)
    merged["command"] = "python benchmarks/bench_official.py --combine " + " ".join(str(p) for p in paths)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(merged, indent=2) + "\n")
    print(f"wrote {out}")
    if not no_report:
        from benchmarks.report import main as render

        render([])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", default="voc20,small")
    p.add_argument("--images", type=int, default=4, help="our images per process (1 first + the steady state)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--oracle-python", type=Path, default=DEFAULT_ORACLE_PY,
                   help="the official code's venv python (bash ../shared/oracle/setup.sh prints it)")
    p.add_argument("--parts", default=",".join(PARTS),
                   help="what to run (default all); with fewer parts the others are kept from --out, each with the "
                        "time and load average of its own run")
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "car-bench-official")
    p.add_argument("--out", type=Path, default=REPO / "results" / "benchmarks" / "official_cpu.json")
    p.add_argument("--no-report", action="store_true", help="do not render results/benchmarks.md")
    p.add_argument("--combine", type=Path, nargs="+", metavar="JSON",
                   help="no run: merge the parts of JSONs this script wrote (later files win) into --out")
    args = p.parse_args(argv)
    if args.combine:
        return combine(args.combine, args.out, args.no_report)
    parts = [x for x in args.parts.split(",") if x]
    if set(parts) - set(PARTS):
        p.error(f"--parts: choose from {', '.join(PARTS)}")
    from car.fidelity.golden import golden_dir, golden_weights

    if golden_dir() is None:
        raise SystemExit("The golden folder (../shared/golden, or $CAR_GOLDEN_DIR) with make_weights.py is missing: "
                         "it draws the random ViT-B/16 both codes load.")
    if "official" in parts and not (args.oracle_python.is_file() and ORACLE.is_file()):
        raise SystemExit(f"The official code's python {args.oracle_python} (or {ORACLE}) is missing: run "
                         f"`bash ../shared/oracle/setup.sh` and pass --oracle-python, or leave out --parts official.")
    args.work.mkdir(parents=True, exist_ok=True)
    weights = golden_weights(golden_dir(), args.work)
    old = json.loads(args.out.read_text()) if set(parts) != set(PARTS) and args.out.is_file() else {}
    report = {"kind": "official", "command": "python benchmarks/bench_official.py " + " ".join(argv or sys.argv[1:]),
              "machine": machine(args.threads), "weights": "random ViT-B/16 (golden make_weights.py, seed 2) for both "
              "CLIPs, one OpenAI-format .pt loaded by both codes", "parts": {}, "cases": {}}
    report["parts"] = {k: v for k, v in old.get("parts", {}).items() if k not in parts}
    report["matmul_gflops"] = matmul_gflops(args.threads)
    print(f"matmul: {report['matmul_gflops']:.0f} GFLOP/s on {args.threads} threads", flush=True)
    for case in args.cases.split(","):
        kept = old.get("cases", {}).get(case, {})
        if "ours" in parts:
            empty_text_cache(args.work)  # so that the priming process's image really has a cold text cache
            primed = run_ours(case, weights, args.work, 1, args.threads, stages=False)  # fills the text cache
            ours = run_ours(case, weights, args.work, args.images, args.threads)
            entry = summarise_case(case, ours, primed, report["matmul_gflops"])
        else:
            entry = {k: v for k, v in kept.items() if k != "official"}
        if "official" in parts:
            entry["official"] = run_official(case, args.oracle_python, weights, args.work, args.threads)
        elif "official" in kept:
            entry["official"] = kept["official"]
        add_ratios(entry)
        report["cases"][case] = entry
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")  # kept if a later part fails
        print(f"{case}: " + json.dumps({k: entry[k] for k in ("speedup_steady", "speedup_first_image") if k in entry}),
              flush=True)
    for part in parts:
        report["parts"][part] = {"run": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                 "load_average": [round(x, 2) for x in os.getloadavg()]}
    if "segment" in parts:
        report["segment"] = run_segment(weights, args.work, args.threads)
        print(f"car-segment cold: {report['segment']['wall_s']:.2f} s", flush=True)
    elif "segment" in old:
        report["segment"] = old["segment"]
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    if not args.no_report:
        from benchmarks.report import main as render

        render([])


if __name__ == "__main__":
    main()
