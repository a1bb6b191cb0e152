"""The markdown section of a `benchmarks/bench_official.py` JSON (ours against the official code)."""

from __future__ import annotations

MATMUL_STAGES = ("trunk (blocks 1..L-1)", "gradCAM (last block + backward)", "classifier images")
SHOWN = {"proposal texts": "text embeddings (cache lookups)"}  # the stage clock times every TextEncoder call


def _s(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 1 else f"{1000 * seconds:.0f} ms"


def render_official(name: str, r: dict) -> list[str]:
    m = r["machine"]
    load0, load1 = m["load_average_at_start"][0], m.get("load_average_at_end", [float("nan")])[0]
    lines = [f"## {name}: CaR against the official code", "",
             f"- command: `{r['command'].strip()}`",
             (f"- machine: {m['platform']}, torch {m['torch']}, **{m['threads']} threads** of {m['cpu_count']} cores, "
             f"CPU only; load average {load0:.1f} at start, {load1:.1f} at end (above {m['cpu_count']}: other jobs "
             f"shared the cores, so absolute times are noisy; ours and the official code ran one after the other "
             f"in this run)"),
             f"- weights: {r['weights']}",
             *[f"- part run: `{c['command']}`" for c in r.get("combined_from", [])],
             *([("- when: " + "; ".join(f"{part} measured {p['run']} (load average {p['load_average'][0]:.1f} at its "
                                        f"end)" for part, p in r["parts"].items()))] if r.get("parts") else []),
             (f"- plain fp32 matmul here ([673, 768] x [768, 3072], {m['threads']} threads): "
             f"**{r['matmul_gflops']:.0f} GFLOP/s** (the floors below divide by it)"), ""]
    lines += [("| case | image (H x W) | official, per image | ours, first image in a new process | ours, steady state "
              "| steady speed-up | first-image speed-up | first / steady |"), "|---|---|---|---|---|---|---|---|"]
    for case, c in r["cases"].items():
        o, off = c["ours"], c.get("official")
        lines.append(f"| {case}: {c['describe']} | {c['image_hw'][0]} x {c['image_hw'][1]} | "
                     + (f"{_s(off['inference_s'])} | " if off else "not run | ")
                     + f"{_s(o['first_image_s'])} | {_s(o['steady_s_per_image'])} | "
                     + (f"**{c['speedup_steady']:.1f}x** | {c['speedup_first_image']:.1f}x | " if off else "- | - | ")
                     + f"{o['cold_over_steady']:.2f} |")
    lines += ["", ("Official: its `inference` time per image (`../shared/oracle/run_oracle.py`, the official "
              "evaluation path; it embeds every text anew for every image, so each of its images costs the same). "
              "Ours: `benchmarks/evaluation_path.py`, CaR as `evaluate.py dataset=voc backbone=vitb16` builds it, "
              "dense CRF included, reading the image included; the first image in a new process reads its text "
              "embeddings from the on-disk cache (filled by an earlier process), the steady state is the median "
              "of the later images."), ""]
    for case, c in r["cases"].items():
        o = c["ours"]
        lines += [f"### {case}: per stage (steady state) against the floor", "",
                  (f"Steps {o['steps']}, live queries per step {o['live_per_step']} (random weights: one query survives "
                  f"step 1); first image with the text cache cold: {_s(o['first_image_text_cache_cold_s'])}; process "
                  f"start-up {_s(o['imports_s'])} imports + {_s(o['build_s'])} config and model load."), "",
                  ("| stage | ours, steady (s) | ours, first image (s) | FLOPs it must do (GFLOP) | floor (s) "
                  "| ours / floor |"), "|---|---|---|---|---|---|"]
        for stage, sec in o["steady_stages_s"].items():
            f = c["floors"].get(stage) if stage in MATMUL_STAGES else None
            first = o["first_image_stages_s"].get(stage, 0.0)
            if f:
                lines.append(f"| {SHOWN.get(stage, stage)} | {sec:.3f} | {first:.3f} | {f['gflop']:.1f} | {f['floor_s']:.3f} | "
                             f"{sec / f['floor_s']:.1f}x |")
            else:
                lines.append(f"| {SHOWN.get(stage, stage)} | {sec:.3f} | {first:.3f} | - | - | not a matmul workload |")
        matmul = {k: f for k, f in c["floors"].items() if k in MATMUL_STAGES}
        total_floor = sum(f["floor_s"] for f in matmul.values())
        lines += [(f"| **all** | {o['steady_s_per_image']:.3f} | {o['first_image_s']:.3f} | "
                  f"{sum(f['gflop'] for f in matmul.values()):.1f} | {total_floor:.3f} | "
                  f"{o['steady_s_per_image'] / total_floor:.1f}x |"), ""]
    seg = r.get("segment")
    if seg:
        lines += ["### `car-segment`, cold", "",
                  f"- `{seg['command']}`",
                  (f"- **{_s(seg['wall_s'])}** for one 500-px image in a new process: imports and start-up "
                  f"{_s(seg['imports_and_startup_s'])}, config and model load {_s(seg['model_load_s'])}, the image "
                  f"(read, CaR, CRF, writing its four files) {_s(seg['image_s'])}; text embeddings from the on-disk "
                  f"cache (the call before, {_s(seg['first_call_wall_s'])}, filled it)"), ""]
    return lines


def readme_summary(r: dict) -> str:
    """The sentences README's Speed section quotes from a bench_official JSON (same numbers as the table)."""
    m = r["machine"]
    parts = r.get("parts") or {}
    loads = ", ".join(f"{k} {v['load_average'][0]:.0f}" for k, v in parts.items())
    out = [(f"Measured {min(v['run'] for v in parts.values()) if parts else ''} on {m['threads']} threads of "
           f"{m['cpu_count']} shared cores (load average at the end of each part: {loads}; the absolute times are "
           f"slowed by other jobs, by different amounts at different times):"), ""]
    out += [("| case | official, per image | ours, first image in a new process | ours, steady state | speed-up, "
            "steady | speed-up, first image |"), "|---|---|---|---|---|---|"]
    for c in r["cases"].values():
        o, off = c["ours"], c.get("official")
        out.append(f"| {c['describe']} | {_s(off['inference_s']) if off else 'not run'} | {_s(o['first_image_s'])} "
                   f"| {_s(o['steady_s_per_image'])} | "
                   + (f"{c['speedup_steady']:.1f}x | {c['speedup_first_image']:.1f}x |" if off else "- | - |"))
    seg = r.get("segment")
    if seg:
        out += ["", (f"`car-segment` on the 500-px image, cold (a new process: imports {_s(seg['imports_and_startup_s'])}, "
                f"model load {_s(seg['model_load_s'])}, the image {_s(seg['image_s'])}): **{_s(seg['wall_s'])}**.")]
    return "\n".join(out)
