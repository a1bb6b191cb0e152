"""One benchmark process: CaR as `evaluate.py` builds it, on one image, timed per image and per stage.

    python benchmarks/evaluation_path.py --case voc20 --weights W.pt --cache-dir D --images 3 --threads 2

Started by `benchmarks/bench_official.py` in a fresh process (so image 1 is a real first image:
first calls, lazy imports, text embeddings read from the disk cache under --cache-dir), it composes
the dataset config exactly as `python evaluate.py dataset=voc backbone=vitb16` does (background
words, templates, prompts, thresholds, CRF), with both CLIPs loaded from the OpenAI-format file
--weights, and runs the segmenter (`propose` + `finish`, the predictor's two halves) on the same
image --images times. Prints one JSON line: the process start-up (imports, config, model load), the
seconds of every image and, per image, the seconds of each stage (`STAGES`).
"""

from __future__ import annotations

import time

PROCESS_START = time.perf_counter()

import argparse
import json
import os
import sys
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.cases import CASES, case_image

# stage name -> (class path, method): each call of the method is timed (nested calls are not
# double-counted: an inner stage's time is subtracted from the stage that called it)
STAGES = {
    "trunk (blocks 1..L-1)": ("car.methods.car.proposals:ProposalGenerator", "encode"),
    "gradCAM (last block + backward)": ("car.methods.car.proposals:ProposalGenerator", "gradcam"),
    "box masks, affinity, upsampling": ("car.methods.car.proposals:ProposalGenerator", "_refine"),
    "visual prompts": ("car.methods.car.prompts:VisualPrompt", "batch"),
    "classifier images": ("car.methods.car.classifier:MaskClassifier", "encode_images"),
    "classifier scores (texts, softmaxes)": ("car.methods.car.classifier:MaskClassifier", "score"),
    "proposal texts": ("car.clip.text:TextEncoder", "__call__"),
    "CRF and painting": ("car.methods.car.segmenter:SemanticCaR", "finish"),
}


class StageClock:
    """Exclusive time per stage: a stage's own time, without the stages called inside it."""

    def __init__(self):
        self.totals: dict[str, float] = defaultdict(float)  # wall seconds
        self.cpu: dict[str, float] = defaultdict(float)  # CPU seconds of the process (all threads)
        self._stack: list[list] = []  # [name, start, cpu start, inner wall, inner cpu]

    def clear(self) -> None:
        self.totals.clear()
        self.cpu.clear()

    @contextmanager
    def __call__(self, name: str):
        frame = [name, time.perf_counter(), time.process_time(), 0.0, 0.0]
        self._stack.append(frame)
        try:
            yield
        finally:
            self._stack.pop()
            spent, cpu = time.perf_counter() - frame[1], time.process_time() - frame[2]
            self.totals[name] += spent - frame[3]
            self.cpu[name] += cpu - frame[4]
            if self._stack:
                self._stack[-1][3] += spent
                self._stack[-1][4] += cpu

    def install(self) -> None:
        import importlib

        for name, (target, method) in STAGES.items():
            module, cls_name = target.split(":")
            cls = getattr(importlib.import_module(module), cls_name)
            original = getattr(cls, method)

            def timed(self_, *args, _original=original, _name=name, **kwargs):
                with self(_name):
                    return _original(self_, *args, **kwargs)

            setattr(cls, method, timed)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", choices=sorted(CASES), required=True)
    p.add_argument("--weights", required=True, help="OpenAI-format ViT-B/16 checkpoint (both CLIPs)")
    p.add_argument("--cache-dir", required=True, help="paths.cache_dir: the on-disk text-embedding cache")
    p.add_argument("--images", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-stages", action="store_true", help="time images only (no per-stage wrappers)")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from car.config import compose
    from car.data.common import read_rgb
    from car.run.build import build_segmenter, load_backbones
    from car.settings import validate

    case = CASES[args.case]
    clock = StageClock()
    if not args.no_stages:
        clock.install()
    imports_s = time.perf_counter() - PROCESS_START
    t0 = time.perf_counter()
    overrides = [f"dataset={case['dataset']}", "backbone=vitb16", f"backbone.proposal.pretrained={args.weights}",
                 f"backbone.classifier.pretrained={args.weights}", f"paths.cache_dir={args.cache_dir}", "logger=none"]
    cfg = compose(overrides, output_dir=str(Path(args.cache_dir) / "unused_run_dir"))
    if case.get("queries"):  # the case's own class list (labels 1..K), as the golden cases do
        from omegaconf import OmegaConf

        OmegaConf.update(cfg, "dataset.queries", list(case["queries"]), force_add=True)
    settings = validate(cfg)  # the typed settings the builders take, as evaluate.py makes them
    clips = load_backbones(settings, "cpu")
    segmenter = build_segmenter(settings, *clips)
    build_s = time.perf_counter() - t0

    rows, first_labels = [], None
    for i in range(args.images):
        clock.clear()
        start, cpu_start = time.perf_counter(), time.process_time()
        image = case_image(args.case, read_rgb)  # [H, W, 3] uint8, as the dataset loader reads it
        sample = {"image": image, "image_id": Path(case["image"]).stem, "index": i}
        proposals, info = segmenter.propose(sample, keep_results=True)
        label_map = segmenter.finish(image, proposals)
        seconds, cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
        stages = dict(clock.totals)
        if not args.no_stages:
            stages["other (reading, glue)"] = max(0.0, seconds - sum(stages.values()))
        if first_labels is None:
            first_labels = label_map
        rows.append({"seconds": seconds, "cpu_s": cpu_s, "stages_s": stages, "stages_cpu_s": dict(clock.cpu),
                     "steps": info["steps"][0], "live_per_step": [len(h) for h in info["results"][0].history],
                     "same_labels_as_first": bool((label_map == first_labels).all())})
        print(f"  ours {args.case} image {i + 1}: {seconds:.2f} s", file=sys.stderr, flush=True)
    encoders = [segmenter.car.text, segmenter.car.classifier.text]
    print(json.dumps({
        "case": args.case, "image_hw": list(image.shape[:2]), "threads": torch.get_num_threads(),
        "imports_s": imports_s, "build_s": build_s, "images": rows,
        "text_disk_hits": sum(getattr(e, "disk_hits", 0) for e in encoders),
        "label_ids": sorted(int(v) for v in set(first_labels.ravel().tolist())),
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
    }))


if __name__ == "__main__":
    main()
