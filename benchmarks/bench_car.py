"""Time CaR per image, by stage, for the batched path and the per-query reference path.

    python benchmarks/bench_car.py                       # CPU, random ViT-B/16 + ViT-B/16, 20 queries
    python benchmarks/bench_car.py --device cuda --classifier ViT-L-14 --precision bf16
    python benchmarks/bench_car.py --memory-curve 5,10,20,40,80

Models are randomly initialised real architectures (no weights needed); the image is a real
500x375 VOC image from ../shared/data when present. Prints a table and writes JSON
(results/benchmarks/<name>.json); `python benchmarks/report.py` renders results/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from car.clip.load import load_clip  # noqa: E402
from car.data.common import read_rgb  # noqa: E402
from car.method.classifier import MaskClassifier  # noqa: E402
from car.method.postprocess import DenseCRF, paint_label_map, semantic_masks  # noqa: E402
from car.method.prompts import VisualPrompt  # noqa: E402
from car.method.proposals import ProposalGenerator  # noqa: E402
from car.method.recurrence import CaR  # noqa: E402
from car.method.reference import ReferenceMaskClassifier, ReferenceProposalGenerator  # noqa: E402
from car.method.text import TextEncoder  # noqa: E402

VOC_IMAGE = REPO.parent / "shared" / "data" / "VOCdevkit" / "VOC2012" / "JPEGImages" / "2007_000129.jpg"
VOC_QUERIES = ["aeroplane", "bicycle", "bird avian", "boat", "bottle", "bus", "car", "cat", "chair seat", "cow",
               "diningtable", "dog", "horse", "motorbike", "person with clothes,people,human", "pottedplant",
               "sheep", "sofa", "train", "tvmonitor screen"]
CAR_DEFAULTS = yaml.safe_load((REPO / "conf" / "car" / "default.yaml").read_text())
TEMPLATES, BACKGROUND = CAR_DEFAULTS["templates"], CAR_DEFAULTS["background_words"]


class StageTimer:
    def __init__(self, device: str):
        self.totals = defaultdict(float)
        self.device = device

    @contextmanager
    def __call__(self, name: str):
        if self.device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        yield
        if self.device == "cuda":
            torch.cuda.synchronize()
        self.totals[name] += time.perf_counter() - start

    def wrap(self, obj, method: str, name: str):
        """Time every call of obj.method (for __call__, through a subclass: implicit calls look
        the method up on the type)."""
        cls = type(obj)
        original = getattr(cls, method)
        timer = self

        def timed(self_, *args, **kwargs):
            with timer(name):
                return original(self_, *args, **kwargs)

        obj.__class__ = type(f"Timed{cls.__name__}", (cls,), {method: timed})


def queries_for(n: int) -> list[str]:
    return [VOC_QUERIES[i % 20] + ("" if i < 20 else f" {i // 20}") for i in range(n)]


def build(proposal_clip, classifier_clip, reference: bool, theta: float, timer: StageTimer) -> CaR:
    gen = (ReferenceProposalGenerator if reference else ProposalGenerator)(proposal_clip, lam=0.4)
    clf = (ReferenceMaskClassifier if reference else MaskClassifier)(classifier_clip, TEMPLATES)
    prompt = VisualPrompt(["circle", "blur"], 0.4)
    timer.wrap(gen, "encode", "proposals")
    timer.wrap(gen, "__call__", "proposals")
    timer.wrap(prompt, "batch", "prompts")
    timer.wrap(clf, "score", "classification")
    return CaR(gen, clf, prompt, TextEncoder(proposal_clip), theta=theta, background_words=BACKGROUND)


def run_path(args, proposal_clip, classifier_clip, reference: bool) -> dict:
    timer = StageTimer(args.device)
    car = build(proposal_clip, classifier_clip, reference, args.theta, timer)
    crf = DenseCRF()
    queries = queries_for(args.queries)
    per_image, result, labels = [], None, None
    autocast = (torch.autocast(args.device, dtype=getattr(torch, {"bf16": "bfloat16", "fp16": "float16"}[args.precision]))
                if args.precision != "fp32" else torch.autocast(args.device, enabled=False))
    for _ in range(args.repeats):
        start = time.perf_counter()
        with timer("data loading"):
            image = read_rgb(args.image) if args.image.is_file() else synthetic_image()
        with autocast:
            result = car(image, queries)
        with timer("crf"):
            masks = semantic_masks(image, result.maps, crf)
            labels = paint_label_map(masks, result.scores, [i + 1 for i in result.live], image.shape[:2])
        per_image.append(time.perf_counter() - start)
    n = args.repeats
    return {
        "seconds_per_image": float(np.median(per_image)),
        "images_per_s": 1.0 / float(np.median(per_image)),
        "stages_s_per_image": {k: v / n for k, v in sorted(timer.totals.items())},
        "steps": result.steps,
        "live_per_step": [len(h) for h in result.history],
        "_result": result,
        "_labels": labels,
    }


def synthetic_image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (375, 500, 3), dtype=np.uint8)


def peak_memory_mb(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def memory_curve(args) -> list[dict]:
    """Peak memory for each query count, each in a fresh process (RSS peaks only grow)."""
    points = []
    for k in [int(x) for x in args.memory_curve.split(",")]:
        cmd = [sys.executable, __file__, "--queries", str(k), "--repeats", "1", "--no-reference", "--json-stdout",
               "--device", args.device, "--proposal", args.proposal, "--classifier", args.classifier,
               "--theta", str(args.theta), "--precision", args.precision]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        row = json.loads(out)
        points.append({"queries": k, "peak_memory_mb": row["peak_memory_mb"],
                       "seconds_per_image": row["fast"]["seconds_per_image"]})
        print(f"queries={k:3d}  peak={row['peak_memory_mb']:.0f} MB  {row['fast']['seconds_per_image']:.2f} s/image")
    return points


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--proposal", default="ViT-B-16")
    p.add_argument("--classifier", default="ViT-B-16")
    p.add_argument("--queries", type=int, default=20)
    p.add_argument("--theta", type=float, default=0.6)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    p.add_argument("--image", type=Path, default=VOC_IMAGE)
    p.add_argument("--no-reference", action="store_true", help="time only the batched path")
    p.add_argument("--memory-curve", default="", help="comma-separated query counts, e.g. 5,10,20,40,80")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--name", default="")
    p.add_argument("--json-stdout", action="store_true")
    p.add_argument("--out-dir", type=Path, default=REPO / "results" / "benchmarks")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    proposal_clip = load_clip({"arch": args.proposal, "pretrained": None, "quick_gelu": True}, args.device)
    classifier_clip = (proposal_clip if args.classifier == args.proposal else
                       load_clip({"arch": args.classifier, "pretrained": None, "quick_gelu": True}, args.device))
    fast = run_path(args, proposal_clip, classifier_clip, reference=False)
    report = {
        "command": " ".join(sys.argv),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(),
                    "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None},
        "setting": {"proposal": args.proposal, "classifier": args.classifier, "queries": args.queries,
                    "theta": args.theta, "precision": args.precision, "device": args.device,
                    "image": str(args.image.name if args.image.is_file() else "synthetic 500x375"),
                    "weights": "random init (timing only)"},
        "fast": {k: v for k, v in fast.items() if not k.startswith("_")},
    }
    if not args.no_reference:
        ref = run_path(args, proposal_clip, classifier_clip, reference=True)
        report["reference"] = {k: v for k, v in ref.items() if not k.startswith("_")}
        report["speedup"] = ref["seconds_per_image"] / fast["seconds_per_image"]
        a, b = fast["_result"], ref["_result"]
        report["outputs_equal"] = {
            "history": a.history == b.history,
            "max_abs_map_diff": float(np.abs(a.maps - b.maps).max()) if a.maps.shape == b.maps.shape else None,
            "max_abs_score_diff": float(np.abs(a.scores - b.scores).max()) if a.scores.shape == b.scores.shape else None,
            "labels_identical": bool((fast["_labels"] == ref["_labels"]).all()),
            "tolerance": 1e-4,
        }
    report["peak_memory_mb"] = peak_memory_mb(args.device)
    if args.json_stdout:
        print(json.dumps(report))
        return
    if args.memory_curve:
        report["memory_curve"] = memory_curve(args)
    name = args.name or f"car_{args.device}_{args.proposal}_{args.classifier}_q{args.queries}_{args.precision}"
    out = args.out_dir / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "memory_curve"}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
