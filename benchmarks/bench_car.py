"""Time CaR per image, by stage, for the batched path and the per-query reference path.

    python benchmarks/bench_car.py                       # CPU, random ViT-B/16 + ViT-B/16, 20 queries
    python benchmarks/bench_car.py --images 3 --reference-images 1 --threads 2   # steady state vs reference
    python benchmarks/bench_car.py --device cuda --classifier ViT-L-14 --precision fp32,fp16,fp16_weights
    python benchmarks/bench_car.py --crf-workers 2 --images 4 --no-reference    # CRF pool overlapping CaR
    python benchmarks/bench_car.py --memory-curve 5,10,20,40,80

Models are randomly initialised real architectures (no weights needed); the images are real
VOC images (about 500x375) from ../shared/data ($CAR_SHARED_DATA) when present (the first is 2007_000129, then the
others in name order), synthetic ones otherwise. With --images N the first image is "cold" (text
embeddings not cached yet, first calls) and images 2..N are the steady state of a dataset run;
the reference path runs on the last --reference-images of them, so every speed-up is a ratio
measured in one run, on the same images and classes. Prints a table and writes JSON
(results/benchmarks/<name>.json, one per precision); `python benchmarks/report.py` renders
results/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import traceback
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.reference import ReferenceMaskClassifier, ReferenceProposalGenerator, UncachedTextEncoder  # noqa: E402
from car.clip.load import load_clip  # noqa: E402
from car.clip.text import TextEncoder  # noqa: E402
from car.data.common import read_rgb  # noqa: E402
from car.methods.car.classifier import MaskClassifier  # noqa: E402
from car.methods.car.prompts import VisualPrompt  # noqa: E402
from car.methods.car.proposals import ProposalGenerator  # noqa: E402
from car.methods.car.recurrence import CaR  # noqa: E402
from car.postprocess.crf import DenseCRF, paint_label_map, semantic_masks  # noqa: E402
from car.settings.enums import CAR_PRECISIONS as PRECISIONS  # noqa: E402
from car.settings.enums import FP16_WEIGHTS  # noqa: E402

SHARED_DATA = Path(os.environ.get("CAR_SHARED_DATA") or REPO.parent / "shared" / "data")  # as tests/conftest.py
VOC_DIR = SHARED_DATA / "VOCdevkit" / "VOC2012" / "JPEGImages"
VOC_IMAGE = VOC_DIR / "2007_000129.jpg"
VOC_QUERIES = ["aeroplane", "bicycle", "bird avian", "boat", "bottle", "bus", "car", "cat", "chair seat", "cow",
               "diningtable", "dog", "horse", "motorbike", "person with clothes,people,human", "pottedplant",
               "sheep", "sofa", "train", "tvmonitor screen"]
REFERENCE_NOTE = (
    "The reference is benchmarks/reference.py run in the same process: our stages with the official code's loop "
    "structure (per query one full visual-tower forward, trunk included, and one gradCAM backward; per classifier "
    "template every prompted image re-encoded alone; every text - queries, background words, filled templates - "
    "embedded anew for every image). It gives the same masks and scores (checked below). It is not the official "
    "code: the official per-image overheads it leaves out (pytorch-grad-cam hooks, the discarded flipped copy, the "
    "unused unrefined CAM upsampling, numpy round trips, CUDA fp16) are not measured, so the ratios compare the "
    "loop structures on equal kernels.")
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


def build(proposal_clip, classifier_clip, reference: bool, theta: float, timer: StageTimer,
          precision: str = "fp32") -> CaR:
    gen = (ReferenceProposalGenerator if reference else ProposalGenerator)(proposal_clip, lam=0.4)
    clf = (ReferenceMaskClassifier if reference else MaskClassifier)(classifier_clip, TEMPLATES)
    prompt = VisualPrompt(["circle", "blur"], 0.4)
    timer.wrap(gen, "encode", "proposals")
    timer.wrap(gen, "__call__", "proposals")
    timer.wrap(prompt, "batch", "prompts")
    timer.wrap(clf, "score", "classification")
    text = (UncachedTextEncoder if reference else TextEncoder)(proposal_clip)
    car = CaR(gen, clf, prompt, text, theta=theta, background_words=BACKGROUND, precision=precision)
    timer.wrap(text, "__call__", "proposal texts")
    return car


def synthetic_image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (375, 500, 3), dtype=np.uint8)


def image_list(first: Path, n: int, scale: float = 1.0) -> list[tuple[str, object]]:
    """n (name, loader) pairs: `first`, then the other VOC images in name order (cycled when
    fewer exist); synthetic 500x375 images when `first` is not a file. `scale` < 1 shrinks them
    (cv2 INTER_AREA; the tiny CPU configuration of device_check.sh)."""
    def shrink(image: np.ndarray) -> np.ndarray:
        if scale == 1.0:
            return image
        h, w = image.shape[:2]
        return cv2.resize(image, (max(16, round(w * scale)), max(16, round(h * scale))), interpolation=cv2.INTER_AREA)

    if not first.is_file():
        return [(f"synthetic{i}", lambda i=i: shrink(synthetic_image(i))) for i in range(n)]
    others = sorted(p for p in first.parent.glob("*.jpg") if p != first) or [first]
    paths = [first] + [others[i % len(others)] for i in range(n - 1)]
    return [(p.name, lambda p=p: shrink(read_rgb(p))) for p in paths]


def run_path(args, proposal_clip, classifier_clip, reference: bool, precision: str, images) -> dict:
    """CaR (batched or reference) + CRF on each image in turn, one CaR object for all of them."""
    timer = StageTimer(args.device)
    car = build(proposal_clip, classifier_clip, reference, args.theta, timer, precision)
    crf = DenseCRF()
    queries = queries_for(args.queries)
    rows, results, labels = [], [], []
    for name, load in images:
        before = dict(timer.totals)
        start = time.perf_counter()
        with timer("data loading"):
            image = load()
        result = car(image, queries)
        with timer("crf"):
            masks = semantic_masks(image, result.maps, crf)
            label_map = paint_label_map(masks, result.scores, [i + 1 for i in result.live], image.shape[:2])
        seconds = time.perf_counter() - start
        stages = {k: v - before.get(k, 0.0) for k, v in sorted(timer.totals.items())}
        rows.append({"image": name, "seconds": seconds, "stages_s": stages, "steps": result.steps,
                     "live_per_step": [len(h) for h in result.history]})
        results.append(result)
        labels.append(label_map)
        print(f"  {'reference' if reference else 'batched'} {precision} {name}: {seconds:.2f} s", flush=True)
    return summarise(rows) | {"_results": results, "_labels": labels}


def _mean_stages(rows: list[dict]) -> dict:
    keys = sorted({k for r in rows for k in r["stages_s"]})
    return {k: float(np.mean([r["stages_s"].get(k, 0.0) for r in rows])) for k in keys}


def summarise(rows: list[dict]) -> dict:
    seconds = [r["seconds"] for r in rows]
    out = {
        "seconds_per_image": float(np.median(seconds)),
        "images_per_s": 1.0 / float(np.median(seconds)),
        "stages_s_per_image": _mean_stages(rows),
        "steps": rows[0]["steps"],
        "live_per_step": rows[0]["live_per_step"],
        "first_image_s": seconds[0],
        "per_image": rows,
    }
    if len(rows) > 1:
        steady = float(np.median(seconds[1:]))
        out |= {"steady_s_per_image": steady, "steady_images_per_s": 1.0 / steady,
                "steady_stages_s_per_image": _mean_stages(rows[1:])}
    return out


def compare(fast: dict, ref: dict, offset: int) -> dict:
    """Ratios and output equality on the images both paths ran (the reference ran images offset..N-1)."""
    pairs = list(zip(range(offset, offset + len(ref["per_image"])), ref["per_image"]))
    def ratio(indices):
        f = sum(fast["per_image"][i]["seconds"] for i in indices)
        r = sum(ref["per_image"][i - offset]["seconds"] for i in indices)
        return r / f if f else None
    steady = [i for i, _ in pairs if i >= 1]
    out = {"speedup": ratio([i for i, _ in pairs]), "reference_images": [row["image"] for _, row in pairs]}
    if steady:
        out["speedup_steady"] = ratio(steady)
        stages = {}
        for stage in ("proposals", "classification"):  # the stages the loop structures differ in
            f = sum(fast["per_image"][i]["stages_s"].get(stage, 0.0) for i in steady)
            r = sum(ref["per_image"][i - offset]["stages_s"].get(stage, 0.0) for i in steady)
            if f > 0:
                stages[stage] = r / f
        out["speedup_steady_by_stage"] = stages
    if offset == 0:
        out["speedup_first"] = ref["per_image"][0]["seconds"] / fast["per_image"][0]["seconds"]
    a_list, b_list = [fast["_results"][i] for i, _ in pairs], ref["_results"]
    same_shape = all(a.maps.shape == b.maps.shape for a, b in zip(a_list, b_list))
    out["outputs_equal"] = {
        "history": all(a.history == b.history for a, b in zip(a_list, b_list)),
        "max_abs_map_diff": max(float(np.abs(a.maps - b.maps).max()) for a, b in zip(a_list, b_list))
        if same_shape else None,
        "max_abs_score_diff": max(float(np.abs(a.scores - b.scores).max()) for a, b in zip(a_list, b_list))
        if same_shape else None,
        "labels_identical": all(bool((fast["_labels"][i] == ref["_labels"][i - offset]).all()) for i, _ in pairs),
        "tolerance": 1e-4,
    }
    return out


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
               "--theta", str(args.theta), "--precision", args.precision.split(",")[0]]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        row = json.loads(out)
        points.append({"queries": k, "peak_memory_mb": row["peak_memory_mb"],
                       "seconds_per_image": row["fast"]["seconds_per_image"]})
        print(f"queries={k:3d}  peak={row['peak_memory_mb']:.0f} MB  {row['fast']['seconds_per_image']:.2f} s/image")
    return points


def crf_overlap(args, proposal_clip, classifier_clip, images, precision: str) -> dict:
    """The production pipeline (car/run/predictor.py) with the dense CRF in `--crf-workers` processes vs in the
    main process, on the same images; both after one warm-up image (text caches, worker start-up)."""
    from car.methods.car.segmenter import QueryPass, SemanticCaR
    from car.metrics import SemanticIoU
    from car.run.predictor import CarPredictor

    queries = queries_for(args.queries)
    timer = StageTimer(args.device)
    car = build(proposal_clip, classifier_clip, False, args.theta, timer, precision)
    segmenter = SemanticCaR(car, [QueryPass(queries, list(range(1, len(queries) + 1)))], DenseCRF())
    samples = []
    for i, (name, load) in enumerate(images):
        image = load()
        samples.append({"image": image, "target": np.zeros(image.shape[:2], np.int64), "image_id": name, "index": i})
    models = list({id(c.model): c.model for c in (proposal_clip, classifier_clip)}.values())

    def predictor(workers: int) -> CarPredictor:
        return CarPredictor(segmenter, models, SemanticIoU(len(queries) + 1), keep_examples=len(samples) + 1,
                            crf_workers=workers)

    segmenter(samples[0])  # warm-up image: text embeddings cached, first calls done
    propose_s, finish_s, serial_preds = [], [], []
    start = time.perf_counter()
    for sample in samples:  # crf_workers=0: the CPU part after the CLIP part, image by image
        t0 = time.perf_counter()
        proposals, _ = segmenter.propose(sample)
        if args.device == "cuda":
            torch.cuda.synchronize()
        t1 = time.perf_counter()
        serial_preds.append(segmenter.finish(sample["image"], proposals))
        propose_s.append(t1 - t0)
        finish_s.append(time.perf_counter() - t1)
    serial_s = time.perf_counter() - start
    pooled = predictor(args.crf_workers)
    pooled.on_predict_start()
    t0 = time.perf_counter()
    pooled.predict_step([samples[0]], 0)  # starts the workers (spawn, imports); not timed below
    pooled._drain(block=True)
    startup_s = time.perf_counter() - t0
    pooled.examples.clear()
    start = time.perf_counter()
    for i, sample in enumerate(samples):
        pooled.predict_step([sample], i)
    pooled.on_predict_epoch_end()
    pooled_s = time.perf_counter() - start
    n = len(samples)
    clip_s, cpu_s = float(np.mean(propose_s)), float(np.mean(finish_s))
    identical = len(pooled.examples) == n and all((a == b["pred"]).all() for a, b in zip(serial_preds, pooled.examples))
    return {
        "crf_workers": args.crf_workers, "images": [s["image_id"] for s in samples], "precision": precision,
        "clip_part_s_per_image": clip_s, "cpu_part_s_per_image": cpu_s,
        "serial_s_per_image": serial_s / n, "overlapped_s_per_image": pooled_s / n,
        "ideal_s_per_image": max(clip_s, cpu_s / max(args.crf_workers, 1)),
        "hidden_fraction_of_cpu_part": max(0.0, (serial_s - pooled_s) / n) / cpu_s if cpu_s else None,
        "speedup": serial_s / pooled_s, "worker_startup_s": startup_s, "labels_identical": bool(identical),
    }


def machine(device: str) -> dict:
    return {"platform": platform.platform(), "processor": platform.processor(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "gpu": torch.cuda.get_device_name() if device == "cuda" else None}


def bench_precision(args, clips, precision: str, images) -> dict:
    if args.device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    fast = run_path(args, *clips, reference=False, precision=precision, images=images)
    report = {
        "command": " ".join(sys.argv),
        "machine": machine(args.device),
        "setting": {"proposal": args.proposal, "classifier": args.classifier, "queries": args.queries,
                    "theta": args.theta, "precision": precision, "device": args.device,
                    "image": images[0][0] if len(images) == 1 else f"{len(images)} images: "
                    + ", ".join(n for n, _ in images),
                    "images": len(images), "image_scale": args.scale, "weights": "random init (timing only)"},
        "fast": {k: v for k, v in fast.items() if not k.startswith("_")},
    }
    if not args.no_reference and args.reference_images != 0:
        k = len(images) if args.reference_images < 0 else min(args.reference_images, len(images))
        offset = len(images) - k
        ref = run_path(args, *clips, reference=True, precision=precision, images=images[offset:])
        report["reference"] = {k_: v for k_, v in ref.items() if not k_.startswith("_")}
        report |= compare(fast, ref, offset)
        report["reference_note"] = REFERENCE_NOTE
    report["peak_memory_mb"] = peak_memory_mb(args.device)
    report["peak_memory_kind"] = "CUDA max allocated, this precision" if args.device == "cuda" else \
        "process RSS peak so far"
    return report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--proposal", default="ViT-B-16")
    p.add_argument("--classifier", default="ViT-B-16")
    p.add_argument("--queries", type=int, default=20)
    p.add_argument("--theta", type=float, default=0.6)
    p.add_argument("--repeats", type=int, default=1, help="alias of --images (kept for old commands)")
    p.add_argument("--images", type=int, default=0, help="images in turn (first = cold, the rest = steady state)")
    p.add_argument("--reference-images", type=int, default=-1,
                   help="the reference path runs on the last N images (-1: all; 0: none)")
    p.add_argument("--precision", default="fp32",
                   help=f"comma-separated, from {', '.join(PRECISIONS)} ({FP16_WEIGHTS} runs last: it casts "
                        f"the models)")
    p.add_argument("--image", type=Path, default=VOC_IMAGE)
    p.add_argument("--scale", type=float, default=1.0, help="shrink the images by this factor (tiny runs)")
    p.add_argument("--no-reference", action="store_true", help="time only the batched path")
    p.add_argument("--crf-workers", type=int, default=0, help="also time the CRF pool of car/run/predictor.py")
    p.add_argument("--memory-curve", default="", help="comma-separated query counts, e.g. 5,10,20,40,80")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--name", default="")
    p.add_argument("--json-stdout", action="store_true")
    p.add_argument("--out-dir", type=Path, default=REPO / "results" / "benchmarks")
    args = p.parse_args()
    precisions = [x for x in args.precision.split(",") if x]
    unknown = [x for x in precisions if x not in PRECISIONS]
    if unknown:
        p.error(f"unknown precision(s) {unknown}; choose from {list(PRECISIONS)}")
    precisions.sort(key=lambda x: x == FP16_WEIGHTS)  # the cast to float16 is in place: last
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    images = image_list(args.image, max(args.images, args.repeats, 1), args.scale)
    proposal_clip = load_clip({"arch": args.proposal, "pretrained": None, "quick_gelu": True}, args.device)
    classifier_clip = (proposal_clip if args.classifier == args.proposal else
                       load_clip({"arch": args.classifier, "pretrained": None, "quick_gelu": True}, args.device))
    clips = (proposal_clip, classifier_clip)
    if args.json_stdout:
        print(json.dumps(bench_precision(args, clips, precisions[0], images)))
        return
    base = args.name or f"car_{args.device}_{args.proposal}_{args.classifier}_q{args.queries}"
    failed = 0
    for i, precision in enumerate(precisions):
        name = (f"{base}_{precision}" if not args.name or len(precisions) > 1 else base)
        try:
            report = bench_precision(args, clips, precision, images)
            if i == 0 and args.crf_workers > 0:
                report["crf_overlap"] = crf_overlap(args, *clips, images, precision)
            if i == 0 and args.memory_curve:
                report["memory_curve"] = memory_curve(args)
        except Exception as err:  # one precision failing (e.g. no kernel) must not lose the others
            failed += 1
            report = {"command": " ".join(sys.argv), "machine": machine(args.device), "failed": True,
                      "setting": {"precision": precision, "device": args.device, "proposal": args.proposal,
                                  "classifier": args.classifier, "queries": args.queries},
                      "error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()[-4000:]}
        out = args.out_dir / f"{name}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2))
        print(json.dumps({k: v for k, v in report.items() if k not in ("memory_curve", "fast", "reference")}, indent=2))
        print(f"wrote {out}", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
