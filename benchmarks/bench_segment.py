"""Time the `car-segment` command on 500-px images (500x375, VOC's typical size), end to end.

    python benchmarks/bench_segment.py                          # both settings below, CPU
    python benchmarks/bench_segment.py --setting tiny --images 5 --threads 2

Settings:
  tiny            the offline default (profile shapes, the embedded tiny CLIP), the ten shapes names
  vitb16_random   profile voc with the ViT-B/16 + ViT-B/16 pair, random weights (backbone.*.pretrained=null):
                  the real architectures' cost, timing only (random weights prune all but one phrase at step 1)

The command runs once per setting in a subprocess on --images generated pictures (shapes scenes
enlarged to 500x375); the per-image seconds are read from the JSON files it writes (read, CaR,
CRF/painting, writing the four files), the first image separately (text embeddings not cached).
Writes results/benchmarks/segment_<device>_<setting>.json; `python benchmarks/report.py` renders
results/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

IMAGE_SIZE = (500, 375)  # width, height
SETTINGS = {
    "tiny": {"args": ["--profile", "shapes"], "backbone": "tiny (embedded tiny CLIP, car-tiny-vit x2)",
             "texts": "circle,square,triangle,star,cross,heart,ring,crescent,arrow,bolt"},
    "vitb16_random": {"args": ["--profile", "voc", "--backbone", "vitb16", "--set", "backbone.proposal.pretrained=null",
                               "--set", "backbone.classifier.pretrained=null"],
                      "backbone": "vitb16 (ViT-B-16 x2, random weights)",
                      "texts": "person,dog,cat,sofa,chair,tvmonitor,pottedplant,bottle,diningtable,bird"},
}


def make_images(folder: Path, count: int) -> list[Path]:
    from PIL import Image

    from car.data.shapes import render_scene, scene_seed

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"img_{i:02d}.jpg"
        Image.fromarray(render_scene(scene_seed("val", i))["image"]).resize(IMAGE_SIZE, Image.NEAREST).save(path,
                                                                                                         quality=92)
        paths.append(path)
    return paths


def machine(threads: int | None) -> dict:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "cpu_count": os.cpu_count(), "threads": threads or torch.get_num_threads(), "gpu": gpu,
            "load_average_at_start": list(os.getloadavg())}


def run_setting(name: str, count: int, threads: int | None, device: str) -> dict:
    setting = SETTINGS[name]
    with tempfile.TemporaryDirectory(prefix="bench-segment-") as tmp:
        images = make_images(Path(tmp) / "in", count)
        out = Path(tmp) / "out"
        cmd = [sys.executable, "-m", "car.apps.segment", str(images[0].parent), "--texts", setting["texts"],
               "--out", str(out), "--device", device] + setting["args"]
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        if threads:
            env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"car-segment failed ({proc.returncode}): {proc.stderr[-2000:]}")
        records = [json.loads((out / f"{p.stem}.json").read_text()) for p in images]
    per_image = [{**{k: r["timings"][k] for k in ("read", "car", "post", "write")},
                  "seconds": round(r["timings"]["total"] + r["timings"]["write"], 4),
                  "steps": len(r["trace"]), "live_per_step": [len(s["live"]) for s in r["trace"]]} for r in records]
    seconds = [p["seconds"] for p in per_image]
    steady = seconds[1:] or seconds
    shown = " ".join(a if " " not in a else f"'{a}'" for a in ["car-segment", "<images>", "--texts", setting["texts"],
                                                                 "--out", "<dir>"] + setting["args"])
    return {
        "kind": "segment",
        "command": f"python benchmarks/bench_segment.py --setting {name} --images {count}"
                   + (f" --threads {threads}" if threads else ""),
        "timed_command": shown,
        "machine": machine(threads),
        "setting": {"name": name, "backbone": setting["backbone"], "profile": records[0]["settings"]["profile"],
                    "phrases": len(setting["texts"].split(",")), "image": f"{IMAGE_SIZE[0]}x{IMAGE_SIZE[1]}",
                    "images": count, "device": device, "crf": records[0]["settings"]["crf"],
                    "max_pixels": records[0]["settings"]["max_pixels"],
                    "car_ran_at": records[0].get("resized_to") or [IMAGE_SIZE[1], IMAGE_SIZE[0]]},
        "wall_s": round(wall, 3),
        "model_load_s": records[0]["model_load_seconds"],
        "startup_s": round(wall - sum(seconds) - records[0]["model_load_seconds"], 3),
        "first_image_s": seconds[0],
        "steady_s_per_image": round(statistics.median(steady), 4),
        "steady_stages_s_per_image": {k: round(statistics.median(p[k] for p in per_image[1:] or per_image), 4)
                                      for k in ("read", "car", "post", "write")},
        "per_image": per_image,
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--setting", default=",".join(SETTINGS), help=f"comma-separated: {', '.join(SETTINGS)}")
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--threads", type=int, help="torch threads in the command (default: torch's)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out-dir", type=Path, default=REPO / "results" / "benchmarks")
    args = ap.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name in args.setting.split(","):
        report = run_setting(name, args.images, args.threads, args.device)
        path = args.out_dir / f"segment_{args.device.split(':')[0]}_{name}.json"
        path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"{name}: {report['steady_s_per_image']:.2f} s/image steady, first {report['first_image_s']:.2f} s, "
              f"start-up {report['startup_s']:.1f} s + model load {report['model_load_s']:.1f} s -> {path}")


if __name__ == "__main__":
    main()
