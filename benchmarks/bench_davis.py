"""Time the DAVIS measures (car/metrics/davis) on a synthetic val-sized set: 30 sequences, 1999 frames
at 854x480 (DAVIS-2017 val's count and size), 3 ground-truth objects per frame and 4 predicted ids.

    python benchmarks/bench_davis.py                      # unsupervised, writes results/benchmarks/davis/
    python benchmarks/bench_davis.py --task semi-supervised --sequences 6

The objects are ellipses and rectangles moving across the frame (with a void band as DAVIS's
annotations have), the predictions the same shapes shifted and grown, one id split in two, plus a
spurious blob: every (predicted, ground-truth) pair gets scored, as the unsupervised task does.
The trees are written as palette PNGs first (not timed); then, in this one process,
`evaluate_folder` is timed end to end (reading the PNGs + scoring) and `DavisMeasures` alone on the
arrays in memory. Prints one JSON object and writes it to
results/benchmarks/davis/metrics_<task>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
HEIGHT, WIDTH = 480, 854
VAL_FRAMES = 1999  # DAVIS-2017 val: 30 sequences


def synthetic_sequence(rng: np.random.Generator, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """gt, pred: [T, H, W] uint8; gt has objects 1..3 and a void band (255), pred ids 1..4."""
    yy, xx = np.mgrid[:HEIGHT, :WIDTH]
    gt = np.zeros((frames, HEIGHT, WIDTH), np.uint8)
    pred = np.zeros_like(gt)
    starts = rng.uniform((60, 80), (HEIGHT - 60, WIDTH - 80), size=(3, 2))
    speeds = rng.uniform(-3, 3, size=(3, 2))
    radii = rng.uniform((40, 50), (110, 160), size=(3, 2))
    for t in range(frames):
        for k in range(3):
            cy, cx = starts[k] + t * speeds[k]
            ry, rx = radii[k]
            inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1 if k != 1 else \
                (abs(yy - cy) < ry) & (abs(xx - cx) < rx)
            gt[t][inside] = k + 1
            shifted = ((yy - cy - 6) / (ry + 5)) ** 2 + ((xx - cx + 4) / (rx + 8)) ** 2 < 1 if k != 1 else \
                (abs(yy - cy - 6) < ry + 5) & (abs(xx - cx + 4) < rx + 8)
            pred[t][shifted] = k + 1
        pred[t][(pred[t] == 2) & (xx > starts[1][1] + t * speeds[1][1])] = 4  # object 2 split in two ids
        pred[t][20:50, 700:760] = 3 if t % 7 else 0  # a spurious blob on id 3
        gt[t][HEIGHT - 6:, :] = 255  # a void band at the bottom
    return gt, pred


def write_tree(root: Path, sequences: dict[str, tuple[np.ndarray, np.ndarray]], task: str) -> tuple[Path, Path]:
    davis, results = root / "DAVIS", root / "results"
    folder = {"unsupervised": "Annotations_unsupervised", "semi-supervised": "Annotations"}[task]
    (davis / "ImageSets" / "2017").mkdir(parents=True)
    (davis / "ImageSets" / "2017" / "val.txt").write_text("\n".join(sequences) + "\n")
    for name, (gt, pred) in sequences.items():
        for out, masks in ((davis / folder / "480p" / name, gt), (results / name, pred)):
            out.mkdir(parents=True)
            for t, mask in enumerate(masks):
                Image.fromarray(mask, mode="L").convert("P").save(out / f"{t:05d}.png")
    return davis, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequences", type=int, default=30)
    parser.add_argument("--frames", type=int, default=VAL_FRAMES, help="total frames (default: DAVIS-2017 val's)")
    parser.add_argument("--task", choices=("unsupervised", "semi-supervised"), default="unsupervised")
    parser.add_argument("--out", type=Path, help="JSON path (default results/benchmarks/davis/metrics_<task>.json)")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from car.metrics.davis import DavisMeasures, evaluate_folder

    rng = np.random.default_rng(0)
    lengths = np.full(args.sequences, args.frames // args.sequences)
    lengths[: args.frames % args.sequences] += 1
    sequences = {f"synthetic-{i:02d}": synthetic_sequence(rng, int(n)) for i, n in enumerate(lengths)}
    if args.task == "semi-supervised":  # ids 1..3 only (the task allows no id above the ground truth's)
        sequences = {k: (gt, np.where(pred == 4, 2, pred).astype(np.uint8)) for k, (gt, pred) in sequences.items()}
    with tempfile.TemporaryDirectory() as tmp:
        davis, results = write_tree(Path(tmp), sequences, args.task)
        start = time.perf_counter()
        cpu_start = time.process_time()
        scores = evaluate_folder(davis, results, task=args.task)
        folder_s, folder_cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
    measures = DavisMeasures(args.task)
    start = time.perf_counter()
    for name, (gt, pred) in sequences.items():
        measures.process(name, gt, pred)
    memory_scores = measures.compute()
    memory_s = time.perf_counter() - start
    assert memory_scores["J&F-Mean"] == scores["J&F-Mean"]
    report = {
        "command": "python benchmarks/bench_davis.py " + " ".join(sys.argv[1:]),
        "task": args.task, "sequences": args.sequences, "frames": int(lengths.sum()), "size": [HEIGHT, WIDTH],
        "gt_objects_per_frame": 3, "predicted_ids": 4 if args.task == "unsupervised" else 3,
        "folder_seconds": round(folder_s, 2), "folder_cpu_seconds": round(folder_cpu_s, 2),
        "folder_frames_per_s": round(lengths.sum() / folder_s, 1),
        "in_memory_seconds": round(memory_s, 2), "J&F-Mean": round(scores["J&F-Mean"], 6),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "load_average_at_start": list(os.getloadavg())},
    }
    print(json.dumps(report))
    out = args.out or REPO / "results" / "benchmarks" / "davis" / f"metrics_{args.task}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
