"""Memory and time of one ViT-B/16 proposal pass at a pixel count (the basis of car.max_pixels).

    python benchmarks/bench_pixel_budget.py                         # 409,600 and 1,000,000 px, chunk 1, 2, 4
    python benchmarks/bench_pixel_budget.py --pixels 1000000 --chunks 1,16

Each (pixels, chunk_size) runs in its own process on CPU: a random-init ViT-B/16 (QuickGELU), a
random 3:2 image of that many pixels, `chunk_size` random unit query embeddings and 23 background
words; one trunk pass plus one step of batched gradCAMs and the affinity refinement. Prints one
JSON line per run: patches, peak resident MB above the loaded model, seconds.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def one_pass(pixels: int, chunk: int) -> dict:
    import numpy as np
    import torch

    sys.path.insert(0, str(REPO))
    from car.clip.load import load_clip
    from car.methods.car.proposals import ProposalGenerator

    torch.manual_seed(0)
    clip = load_clip({"arch": "ViT-B-16", "pretrained": None, "quick_gelu": True})
    width = int((pixels * 1.5) ** 0.5)
    height = pixels // width  # 3:2 landscape
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)  # [H, W, 3]
    generator = ProposalGenerator(clip, lam=0.4, chunk_size=chunk)
    queries = torch.nn.functional.normalize(torch.randn(chunk, 512), dim=-1)  # [K, D]
    background = torch.nn.functional.normalize(torch.randn(23, 512), dim=-1)  # [B, D]
    model_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    encoding = generator.encode(image)
    generator(encoding, queries, background)  # [K, H, W]
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"pixels": height * width, "size": [height, width], "patches": encoding.grid[0] * encoding.grid[1],
            "chunk_size": chunk, "pass_mb": round(peak_mb - model_mb), "seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pixels", default="409600,1000000")
    parser.add_argument("--chunks", default="1,2,4")
    parser.add_argument("--one", nargs=2, type=int, help=argparse.SUPPRESS)  # child process: pixels chunk
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_pass(*args.one)))
        return
    for pixels in map(int, args.pixels.split(",")):
        for chunk in map(int, args.chunks.split(",")):
            out = subprocess.run([sys.executable, __file__, "--one", str(pixels), str(chunk)], capture_output=True,
                                 text=True, check=True).stdout
            print(out.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
