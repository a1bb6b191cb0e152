"""Render results/benchmarks.md (and the memory-curve plots) from results/benchmarks/*.json.

    python benchmarks/report.py
    python benchmarks/report.py --dir results/benchmarks --dir $OUT/benchmarks --device-check $OUT --out FILE

Every JSON was written by `benchmarks/bench_official.py`, `bench_car.py` or `bench_segment.py` (its
command is shown with its numbers);
`--device-check DIR` adds the summary that `benchmarks/device_check.sh` wrote to DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.report_official import readme_summary, render_official  # noqa: E402

BENCH_DIR = REPO / "results" / "benchmarks"
STAGE_ORDER = ("proposal texts", "proposals", "prompts", "classification", "crf", "data loading")


def stage_line(stages: dict) -> str:
    keys = [k for k in STAGE_ORDER if k in stages] + [k for k in stages if k not in STAGE_ORDER]
    return ", ".join(f"{k} {stages[k]:.2f}" for k in keys)


def _ms(stages: dict) -> str:
    keys = [k for k in STAGE_ORDER if k in stages] + [k for k in stages if k not in STAGE_ORDER]
    return ", ".join(f"{k} {1000 * stages[k]:.0f}" for k in keys)


def _time(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 1 else f"{1000 * seconds:.0f} ms"


def render_one(name: str, r: dict, md_dir: Path, json_dir: Path) -> list[str]:
    s, m = r["setting"], r["machine"]
    lines = [f"## {name}", "", f"- command: `{r['command']}`"]
    if r.get("failed"):
        return lines + [f"- setting: {s.get('device')}, {s.get('precision')}, proposal {s.get('proposal')}, "
                        f"classifier {s.get('classifier')}", f"- **failed**: {r['error']}", ""]
    load = m.get("load_average_at_start")
    lines += [f"- machine: {m['platform']}, torch {m['torch']}, {m['threads']} threads"
              + (f" of {m['cpu_count']} cores" if m.get("cpu_count") else "")
              + (f", GPU {m['gpu']}" if m.get("gpu") else ", CPU only")
              + (f"; load average {load[0]:.1f} at start (a shared machine: absolute times are noisy, the "
                 f"ratios are measured in the same run)" if load and not m.get("gpu") else ""),
              f"- setting: proposal {s['proposal']}, classifier {s['classifier']}, {s['queries']} queries, "
              f"θ={s['theta']}, {s['precision']}, {s.get('device', 'cpu')}, image {s['image']}"
              + (f" (scaled by {s['image_scale']})" if s.get("image_scale", 1.0) != 1.0 else "")]
    f = r["fast"]
    if "steady_s_per_image" in f:
        lines += [f"- batched path, **steady state: {_time(f['steady_s_per_image'])}/image "
                  f"({f['steady_images_per_s']:.3f} images/s)** (median of images 2..{s.get('images')}); "
                  f"stages (ms/image): {_ms(f['steady_stages_s_per_image'])}",
                  f"- batched path, first image (text embeddings not cached yet): {_time(f['first_image_s'])}"]
    else:
        lines.append(f"- batched path: **{f['seconds_per_image']:.2f} s/image** "
                     f"({f['images_per_s']:.3f} images/s); stages (s/image): {stage_line(f['stages_s_per_image'])}")
    lines += [f"- steps {f['steps']} (live queries per step {f['live_per_step']}; random weights: every query but "
              f"the best is pruned at step 1)",
              f"- peak memory: {r['peak_memory_mb']:.0f} MB "
              f"({r.get('peak_memory_kind') or ('CUDA max allocated' if m.get('gpu') else 'process RSS')})"]
    if "reference" in r:
        eq, ref = r["outputs_equal"], r["reference"]
        where = ", ".join(r.get("reference_images", [])) or "the same image"
        lines.append(f"- per-query reference path on {where}: {_time(ref['seconds_per_image'])}/image "
                     f"(median); stages (s/image): {stage_line(ref['stages_s_per_image'])}")
        if "speedup_steady" in r:
            by_stage = ", ".join(f"{k} {v:.1f}x" for k, v in r.get("speedup_steady_by_stage", {}).items()
                                 if k in ("proposals", "classification"))
            lines.append(f"- **steady-state speed-up {r['speedup_steady']:.1f}x** over the reference on the same "
                         f"images and classes, in the same run (by stage: {by_stage})")
        if "speedup_first" in r:
            lines.append(f"- first-image speed-up {r['speedup_first']:.1f}x")
        if "speedup_steady" not in r and "speedup_first" not in r:
            lines.append(f"- **speed-up {r['speedup']:.1f}x** in the same run")
        lines.append(f"- outputs: same live sets per step {eq['history']}, max |Δmap| {eq['max_abs_map_diff']:.2e}, "
                     f"max |Δscore| {eq['max_abs_score_diff']:.2e}, identical label maps {eq['labels_identical']}")
        if r.get("reference_note"):
            lines.append(f"- reference: {r['reference_note']}")
    c = r.get("crf_overlap")
    if c:
        lines.append(f"- CRF pool (`crf_workers={c['crf_workers']}`, car/run/predictor.py) "
                     f"on {len(c['images'])} images "
                     f"after a warm-up image: {_time(c['overlapped_s_per_image'])}/image against "
                     f"{_time(c['serial_s_per_image'])}/image with the CRF in the main process "
                     f"({c['speedup']:.2f}x; CLIP part {_time(c['clip_part_s_per_image'])}, CPU part "
                     f"{_time(c['cpu_part_s_per_image'])} per image; "
                     f"{100 * (c['hidden_fraction_of_cpu_part'] or 0):.0f} % "
                     f"of the CPU part hidden; identical label maps {c['labels_identical']}; worker start-up "
                     f"{c['worker_startup_s']:.1f} s, once per run)")
    if r.get("memory_curve"):
        lines += ["", "| queries | peak memory (MB) | s/image |", "|---|---|---|"]
        lines += [f"| {p['queries']} | {p['peak_memory_mb']:.0f} | {p['seconds_per_image']:.2f} |"
                  for p in r["memory_curve"]]
        png = plot_curve(name, r["memory_curve"], json_dir)
        lines += ["", f"![memory vs queries]({Path(os.path.relpath(png, md_dir)).as_posix()})"]
    lines.append("")
    return lines


def render_device_check(summary: dict) -> list[str]:
    lines = ["## Device check (`benchmarks/device_check.sh`)", "",
             f"- device: {summary.get('device_name') or summary['device']}, size `{summary['size']}`, "
             f"{summary['seconds']:.0f} s in all (limit {summary['limit_s']} s), torch {summary.get('torch')}",
             f"- command: `{summary['command']}`", "", "| step | status | seconds | result |", "|---|---|---|---|"]
    for step in summary["steps"]:
        lines.append(f"| {step['name']} | {step['status']} | {step['seconds']:.0f} | {step.get('result', '')} |")
    lines.append("")
    return lines


def render(reports: list[tuple[str, dict, Path]], md_dir: Path, device_check: dict | None = None) -> str:
    lines = ["# CaR speed and memory benchmarks", "",
             "Generated by `python benchmarks/report.py` from `results/benchmarks/*.json` (`python "
             "benchmarks/bench_official.py` runs the comparison with the official code and then this); each JSON was "
             "written by the command shown. Models are randomly initialised real architectures (timing only).", ""]
    if device_check:
        lines += render_device_check(device_check)
    for name, r, json_dir in reports:
        if r.get("kind") == "official":  # benchmarks/bench_official.py (ours against the official code)
            lines += render_official(name, r)
            continue
        if r.get("kind") == "segment":  # benchmarks/bench_segment.py (the car-segment command)
            lines += render_segment(name, r)
            continue
        lines += render_one(name, r, md_dir, json_dir)
    return "\n".join(lines)


def _secs(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 1 else f"{1000 * seconds:.0f} ms"


def render_segment(name: str, r: dict) -> list[str]:
    """A `benchmarks/bench_segment.py` JSON: the car-segment command, seconds per 500-px image."""
    s, m = r["setting"], r["machine"]
    load = m.get("load_average_at_start")
    stages = r["steady_stages_s_per_image"]
    return [f"## {name}", "", f"- command: `{r['command']}` (times `{r['timed_command']}`)",
            f"- machine: {m['platform']}, torch {m['torch']}, {m['threads']} threads of {m['cpu_count']} cores, "
            + (f"GPU {m['gpu']}" if m.get("gpu") else "CPU only: **no GPU was available**")
            + (f"; load average {load[0]:.1f} at start (a shared machine: times are noisy)" if load else ""),
            f"- setting: {s['backbone']}, profile {s['profile']}, {s['phrases']} phrases, image {s['image']} "
            f"(CaR ran at {s['car_ran_at'][1]}x{s['car_ran_at'][0]}), CRF {'on' if s['crf'] else 'off'}, {s['device']}",
            f"- **{_secs(r['steady_s_per_image'])} per 500-px image** (median of images 2..{s['images']}: read "
            f"{_secs(stages['read'])}, CaR {_secs(stages['car'])}, CRF and painting {_secs(stages['post'])}, writing "
            f"the four files {_secs(stages['write'])}); first image {_secs(r['first_image_s'])}",
            f"- once per command: start-up and imports {_secs(r['startup_s'])}, model load {_secs(r['model_load_s'])}; "
            f"{s['images']} images in {_secs(r['wall_s'])} wall",
            f"- steps per image {[p['steps'] for p in r['per_image']]}, live phrases per step "
            f"{r['per_image'][-1]['live_per_step']} (last image)", ""]


def plot_curve(name: str, points: list[dict], out_dir: Path = BENCH_DIR) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    q = [p["queries"] for p in points]
    ax.plot(q, [p["peak_memory_mb"] for p in points], "o-")
    ax.set_xlabel("queries")
    ax.set_ylabel("peak memory (MB)")
    ax.set_title(name, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(out_dir) / f"{name}_memory.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def load_reports(dirs: list[Path]) -> list[tuple[str, dict, Path]]:
    """Every JSON of the folders; the comparisons with the official code first."""
    reports = []
    for d in dirs:
        for p in sorted(Path(d).glob("*.json")):
            reports.append((p.stem, json.loads(p.read_text()), Path(d)))
    return sorted(reports, key=lambda r: r[1].get("kind") != "official")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, action="append", help="folder of bench_car JSONs (repeatable)")
    ap.add_argument("--device-check", type=Path, help="folder holding device_check.sh's device_check.json")
    ap.add_argument("--out", type=Path, default=REPO / "results" / "benchmarks.md")
    ap.add_argument("--readme-summary", type=Path, metavar="JSON",
                    help="print the Speed paragraph README quotes from a bench_official.py JSON, and stop")
    args = ap.parse_args(argv)
    if args.readme_summary:
        print(readme_summary(json.loads(args.readme_summary.read_text())))
        return
    dirs = args.dir or [BENCH_DIR]
    reports = load_reports(dirs)
    summary = None
    if args.device_check and (args.device_check / "device_check.json").is_file():
        summary = json.loads((args.device_check / "device_check.json").read_text())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(reports, args.out.parent.resolve(), summary))
    print(f"wrote {args.out} from {len(reports)} benchmark file(s)")


if __name__ == "__main__":
    main()
