"""What each CaR stage must compute, in FLOPs, and the time that takes at this machine's matmul speed.

A stage's floor is the matrix-multiply FLOPs of the passes it cannot avoid, divided by the
GFLOP/s that a plain fp32 matmul of the same shapes reaches here with the same thread count
(`matmul_gflops`, measured in the benchmark run). Layer norms, softmaxes and activations are
left out (memory-bound, a few percent), so the floors are lower bounds. ViT notation: C width,
L blocks, T = 1 + N tokens, D embedding size; one block's forward costs 24·T·C² (the qkv, output
and two MLP projections) + 4·T²·C (scores and weighted sum) FLOPs. gradCAM's per-query cost is
that of the token-summed backward of car/clip/last_block.py (the FLOPs of a full backward to the
block's input, 24·T·C² + 8·T²·C per query, are what autograd would do).
"""

from __future__ import annotations

import math
import time

VIT_B16 = {"width": 768, "layers": 12, "embed": 512, "patch": 16, "classifier_size": 224}


def block_forward(t: int, c: int) -> float:
    return 24 * t * c * c + 4 * t * t * c


def stage_flops(image_hw: tuple[int, int], live_per_step: list[int], vit: dict = VIT_B16) -> dict[str, float]:
    """FLOPs per stage for one image of image_hw whose recurrence saw live_per_step queries."""
    c, layers, d, p = vit["width"], vit["layers"], vit["embed"], vit["patch"]
    n = math.ceil(image_hw[0] / p) * math.ceil(image_hw[1] / p)  # patch tokens at the image's own size
    t = n + 1
    patch_embed = 2 * n * c * (3 * p * p)
    trunk = patch_embed + (layers - 1) * block_forward(t, c)
    # gradCAM (car/clip/last_block.py): the last block once per image (its forward is the same at every
    # step) with its attention weights applied to the keys too (P k), the patch tokens projected and pooled,
    # x̂_post·W_proj of the MLP's second layer; then per live query only what the token-summed gradient
    # needs: the matmul through the MLP's first layer (8·T·C²) and the output projection (2·T·C²) on
    # every token, the per-head product Pᵀ dO over the patch rows (2·T·N·C), and vector products (the
    # cotangent through the projection and W_proj, 2·C·D + 8·C²; the three q/k/v weights, 6·C²)
    gradcam = block_forward(t, c) + 2 * t * t * c + 2 * n * c * d + 8 * t * c * c
    per_query = 10 * t * c * c + 2 * t * n * c + 14 * c * c + 2 * c * d
    gradcam += sum(live_per_step) * per_query
    # classifier: one 224-px image per live query and step, except a step with one live query (its
    # score is 1 whatever the image: nothing to encode); blocks 1..L-2 on every token, block L-1
    # (the CLS token is read after it, Q1) only for the CLS token: keys and values of every token
    s = vit["classifier_size"] // p
    tc = s * s + 1
    per_image = 2 * s * s * c * (3 * p * p) + (layers - 2) * block_forward(tc, c)
    per_image += 2 * tc * 2 * c * c + 20 * c * c + 4 * tc * c + 2 * c * d  # K, V of all; q, out, MLP of CLS
    classifier = sum(k for k in live_per_step if k > 1) * per_image
    return {"trunk (blocks 1..L-1)": trunk, "gradCAM (last block + backward)": gradcam,
            "classifier images": classifier}  # the other stages are OpenCV, numpy and the CRF, not matmuls


def matmul_gflops(threads: int, tokens: int = 673, width: int = 768, repeats: int = 20) -> float:
    """GFLOP/s of a plain fp32 matmul [tokens, width] x [width, 4·width] (a ViT-B MLP layer) with
    `threads` threads: the best of a few timed batches, wall-clock."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(tokens, width), torch.randn(width, 4 * width)
        for _ in range(3):
            a @ b
        best = math.inf
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(repeats):
                a @ b
            best = min(best, (time.perf_counter() - start) / repeats)
        return 2 * tokens * width * 4 * width / best / 1e9
    finally:
        torch.set_num_threads(before)


def floors(image_hw, live_per_step, gflops: float) -> dict[str, dict]:
    """{stage: {"gflop": ..., "floor_s": ...}} at `gflops` GFLOP/s."""
    return {k: {"gflop": v / 1e9, "floor_s": v / 1e9 / gflops} for k, v in stage_flops(image_hw, live_per_step).items()}
