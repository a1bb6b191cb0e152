"""Proposal generator: gradCAM on the proposal CLIP + attention-affinity refinement (CAR_SPEC §3).

    image [H, W, 3] uint8 --encode()--> ImageEncoding (query independent, reused every step)
    ImageEncoding + query texts --__call__()--> proposal maps [K, H, W] in [0, 1]

The K gradCAMs of a step come from ONE forward of the last block and ONE batched backward
(K cotangents), which equals K separate forward/backward passes (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from car.clip import last_block
from car.clip.load import ClipModel
from car.clip.surgery import block_forward, embed_tokens, num_blocks, project, run_blocks


@dataclass
class ImageEncoding:
    """Everything about one image that does not depend on the queries."""

    x: torch.Tensor  # [1, 1+N, C] residual stream after block L-1
    trunk_attn: list[torch.Tensor]  # affinity blocks except the last, each [N, N] (patch<->patch)
    grid: tuple[int, int]  # (h, w) patch grid
    size: tuple[int, int]  # (H, W) native image size
    image: np.ndarray | None = None  # the input, kept for the per-query reference path
    last_block: last_block.LastBlockState | None = None  # the last block's forward, made by the first gradCAM


def preprocess(image: np.ndarray, clip: ClipModel) -> torch.Tensor:
    """§3.1: bicubic resize (PIL) to multiples of the patch size, normalise. -> [1, 3, H', W']."""
    h, w = image.shape[:2]
    p = clip.patch_size
    hp, wp = p * -(-h // p), p * -(-w // p)
    resized = Image.fromarray(image).resize((wp, hp), Image.BICUBIC) if (hp, wp) != (h, w) else image
    x = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(clip.mean).view(3, 1, 1)
    std = torch.tensor(clip.std).view(3, 1, 1)
    return ((x - mean) / std).unsqueeze(0).to(clip.device, clip.dtype)  # float16 in the fp16-weights mode


def minmax(x: torch.Tensor, dim: int = -1, eps: float = 1e-15) -> torch.Tensor:
    lo = x.amin(dim=dim, keepdim=True)
    hi = x.amax(dim=dim, keepdim=True)
    return (x - lo) / (hi - lo + eps)


def box_mask(cam: np.ndarray, lam: float, clamp: str = "official") -> np.ndarray:
    """§3.4 step 4: union of bounding boxes of the CAM's contours above lam·max. cam [h, w] -> bool [h, w].

    clamp="official" reproduces quirk Q8 (the last grid row/column can never be inside a box).
    """
    h, w = cam.shape
    u = np.floor(255 * cam).astype(np.uint8)
    fg = u > np.floor(lam * int(u.max()))
    while not fg.any() and lam > 0:
        lam -= 0.1
        fg = u > np.floor(lam * int(u.max()))
    mask = np.zeros((h, w), dtype=bool)
    contours, _ = cv2.findContours(fg.astype(np.uint8), cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    limit_w, limit_h = (w - 1, h - 1) if clamp == "official" else (w, h)
    for contour in contours:
        x, y, bw, bh = cv2.boundingRect(contour)
        mask[y : min(y + bh, limit_h), x : min(x + bw, limit_w)] = True
    return mask


def affinity(attn_maps: list[torch.Tensor]) -> torch.Tensor:
    """§3.4 steps 1-3: mean attention -> Sinkhorn balancing (3 rounds) -> symmetrise -> square. [N, N].

    The maps are averaged in their own dtype (float16 in the fp16-weights mode, as the official code
    averages its stacked float16 maps), the rest in float32."""
    s = torch.stack(attn_maps).mean(0).float()  # [N, N]
    for _ in range(3):
        s = s / s.sum(dim=0, keepdim=True)  # columns
        s = s / s.sum(dim=1, keepdim=True)  # rows
    s = (s + s.T) / 2
    return s @ s


class ProposalGenerator:
    """Maps text queries to soft masks on one image with gradCAM + CLIP-ES affinity refinement.

    Args:
        clip: the proposal CLIP (ViT).
        lam: λ, threshold of the box mask inside the refinement (not a CRF parameter).
        affinity_layers: how many of the last blocks' attentions form the affinity (8 in CaR).
        box_clamp: "official" (quirk Q8) or "correct".
        posemb_fp16_round: round the interpolated positional table to fp16 (quirk Q3).
        chunk_size: queries per batched gradCAM pass (bounds memory; results do not depend on it).
    """

    def __init__(self, clip: ClipModel, lam: float, affinity_layers: int = 8, box_clamp: str = "official",
                 posemb_fp16_round: bool = True, chunk_size: int = 16):
        self.clip = clip
        self.lam = float(lam)
        self.depth = num_blocks(clip.visual)
        self.affinity_layers = min(int(affinity_layers), self.depth)
        self.box_clamp = box_clamp
        self.posemb_fp16_round = posemb_fp16_round
        self.chunk_size = chunk_size
        self.analytic = True  # False: always autograd (tests compare the two)

    @torch.no_grad()
    def encode(self, image: np.ndarray) -> ImageEncoding:
        """§3.1-3.2: preprocess, then the trunk pass through blocks 1..L-1."""
        enc = self.encode_input(preprocess(image, self.clip), image.shape[:2])
        enc.image = image
        return enc

    @torch.no_grad()
    def encode_input(self, x: torch.Tensor, size: tuple[int, int]) -> ImageEncoding:
        """§3.2 from a preprocessed input [1, 3, H', W'] (teacher-forced in the golden tests):
        blocks 1..L-1, keeping the attention of the affinity blocks (CLS row/column dropped)."""
        visual = self.clip.visual
        x, h, w = embed_tokens(visual, x, self.posemb_fp16_round)
        first_affinity = self.depth - self.affinity_layers
        x, _ = run_blocks(visual, x, range(first_affinity))
        x, maps = run_blocks(visual, x, range(first_affinity, self.depth - 1), need_weights=True)
        trunk_attn = [m[0, 1:, 1:] for m in maps]  # drop CLS row/column before averaging
        return ImageEncoding(x=x, trunk_attn=trunk_attn, grid=(h, w), size=tuple(size))

    def image_feature(self, enc: ImageEncoding, z: torch.Tensor | None = None):
        """§3.3: the last block on the trunk tokens (z: a gradient-tracked ln_1 of them), patch-mean
        pooled and projected. -> unit-norm image feature [1, D], last block's attention [1, 1+N, 1+N]."""
        last = self.clip.visual.transformer.resblocks[-1]
        y, attn = block_forward(last, enc.x, need_weights=True, z=z, weights_without_grad=z is not None)
        v = F.normalize(project(self.clip.visual, y[:, 1:]).mean(dim=1), dim=-1)  # [1, D]
        return v, attn

    def cam_probs(self, v: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
        """Softmax over the texts of logit_scale·cos(v, text). v [1, D], texts [K, T, D] -> [K, T]."""
        return (self.clip.logit_scale * torch.einsum("d,ktd->kt", v[0], texts)).softmax(dim=-1)

    def gradcam(self, enc: ImageEncoding, texts: torch.Tensor, target: torch.Tensor):
        """§3.3 for a batch of queries.

        texts: [K, T, D] unit-norm text matrix per query; target: [K] index of the query's own text
        in its row. Returns cams [K, h, w] in [0, 1] and the last block's attention [N, N].

        float32 open_clip blocks (`last_block.supports`): the last block's forward is made once per
        image and kept on `enc`; each query's channel weights come from the hand-written
        token-summed backward of car/clip/last_block.py. Otherwise (float16 weights, autocast,
        non-standard blocks): one forward of the last block, then one batched backward (autograd's
        vmap over K cotangents). Either way query k's gradient is that of its own probability p_k,
        as if each query had its own forward/backward pass (both tested against that).
        """
        if self.analytic and last_block.supports(self.clip.visual, self.clip.dtype):
            return self._gradcam_analytic(enc, texts, target)
        last = self.clip.visual.transformer.resblocks[-1]
        k = texts.shape[0]
        texts = texts.to(self.clip.dtype)  # fp16-weights mode: the gradCAM softmax in float16 (no-op otherwise)
        with torch.enable_grad():
            z = last.ln_1(enc.x).detach().requires_grad_(True)  # hooked activation Z, [1, 1+N, C]
            v, attn = self.image_feature(enc, z)  # patch-mean embedding [1, D]
            prob = self.cam_probs(v, texts)[torch.arange(k, device=v.device), target]  # p_k of own text, [K]
            eye = torch.eye(k, dtype=prob.dtype, device=prob.device)  # cotangent k selects p_k
            (grad,) = torch.autograd.grad(prob, z, grad_outputs=eye, is_grads_batched=True)  # [K, 1, 1+N, C]
        zp, gp = z.detach()[:, 1:].float(), grad[:, 0, 1:].float()  # drop CLS: [1, N, C], [K, N, C] (float32)
        weights = gp.mean(dim=1, keepdim=True)  # channel weights a_d, [K, 1, C]
        cam = (weights * zp).sum(dim=-1).clamp_min(0)  # [K, N]
        cam = minmax(minmax(cam).clamp_min(0))
        h, w = enc.grid
        return cam.reshape(k, h, w).float(), attn[0, 1:, 1:].detach()

    def _gradcam_analytic(self, enc: ImageEncoding, texts: torch.Tensor, target: torch.Tensor):
        """gradcam() for float32 standard blocks: the cotangent at the pooled embedding u in closed
        form, then last_block.patch_mean_grad for the channel weights."""
        if enc.last_block is None:
            enc.last_block = last_block.forward_state(self.clip.visual, enc.x)
        state, k = enc.last_block, texts.shape[0]
        rows = torch.arange(k, device=texts.device)
        norm = state.pooled.norm().clamp_min(1e-12)  # F.normalize's eps
        v = state.pooled / norm  # [D]
        probs = (self.clip.logit_scale * torch.einsum("d,ktd->kt", v, texts)).softmax(dim=-1)  # [K, T]
        # p_k = softmax(s·<v, t_kj>)[target_k]:  dp_k/dv = s·p_k·(t_k,target - Σ_j p_kj t_kj)
        own, mixed = texts[rows, target], torch.einsum("kt,ktd->kd", probs, texts)  # [K, D] each
        grad_v = self.clip.logit_scale * probs[rows, target, None] * (own - mixed)  # [K, D]
        grad_u = (grad_v - (grad_v @ v)[:, None] * v) / norm  # through v = u / |u|, [K, D]
        weights = last_block.patch_mean_grad(self.clip.visual, state, grad_u)  # a_k, [K, C]
        cam = (weights @ state.z[1:].T).clamp_min(0)  # [K, N]
        cam = minmax(minmax(cam).clamp_min(0))
        h, w = enc.grid
        return cam.reshape(k, h, w).float(), state.attn_mean[1:, 1:]

    def __call__(self, enc: ImageEncoding, queries: torch.Tensor, background: torch.Tensor,
                 compete: bool = True) -> np.ndarray:
        """Proposal maps for K queries.

        queries: [K, D] unit-norm text embeddings; background: [B, D] background-word embeddings.
        compete=True (semantic mode): each gradCAM softmax runs over all K queries + B background
        words; compete=False (referring mode): over its own query + the B background words.
        Returns float32 maps [K, H, W] in [0, 1].
        """
        k = queries.shape[0]
        cams, last_attn = [], None
        for start in range(0, k, self.chunk_size):
            idx = torch.arange(start, min(start + self.chunk_size, k), device=queries.device)
            cam, last_attn = self.cams(enc, queries, background, idx, compete)
            cams.append(cam)
        cams = torch.cat(cams).float()  # [K, h, w]
        with torch.autocast(cams.device.type, enabled=False):  # the refinement always runs in fp32
            # float32 maps, or float16 ones in the fp16-weights mode (averaged in float16 there, Q32)
            s = affinity([a.to(self.clip.dtype) for a in enc.trunk_attn + [last_attn]])  # [N, N]
            return self._refine(cams, s, enc)

    def cams(self, enc, queries, background, idx: torch.Tensor, compete: bool):
        """gradCAMs [n, h, w] of the queries at positions idx (with the Q7 retry), last attention."""
        n = len(idx)
        if compete:
            texts = torch.cat([queries, background]).expand(n, -1, -1)  # [n, K+B, D]
            target = idx
        else:
            texts = torch.cat([queries[idx, None], background.expand(n, -1, -1)], dim=1)  # [n, 1+B, D]
            target = torch.zeros_like(idx)
        cam, attn = self.gradcam(enc, texts, target)
        empty = cam.flatten(1).amax(dim=1) == 0
        if empty.any():  # Q7: recompute without background words
            sub = idx[empty]
            texts = queries.expand(len(sub), -1, -1) if compete else queries[sub, None]
            cam[empty], _ = self.gradcam(enc, texts, sub if compete else torch.zeros_like(sub))
        return cam, attn

    def _refine(self, cams: torch.Tensor, s: torch.Tensor, enc: ImageEncoding) -> np.ndarray:
        """§3.4 steps 4-6: box mask, affinity propagation, min-max, bilinear upsample to H x W.

        On a GPU the CAMs [K, h, w] and the refined maps [K, h, w] come to the host here, once per
        step: the box masks are OpenCV's contours and the upsampling is OpenCV's INTER_LINEAR (both
        as the official code, golden-tested), and the visual prompts that follow are drawn with
        OpenCV on the host anyway, so an on-device resize would only move K x H x W floats instead."""
        boxes = np.stack([box_mask(c, self.lam, self.box_clamp) for c in cams.cpu().numpy()])  # [K, h, w]
        return upsample(minmax_maps(propagate(cams, boxes, s)), enc.size)


def propagate(cams: torch.Tensor, boxes: np.ndarray, s: torch.Tensor) -> torch.Tensor:
    """§3.4 step 5: r[i] = Σ_j S[i,j] m[j] ĉ[j]. cams [K, h, w], boxes [K, h, w] bool, S [N, N]
    -> refined CAMs [K, h, w] before min-max."""
    k, h, w = cams.shape
    sources = cams * torch.from_numpy(boxes).to(cams.device)  # m[j]·ĉ[j], [K, h, w]
    return (sources.flatten(1) @ s.T).reshape(k, h, w)


def minmax_maps(refined: torch.Tensor) -> np.ndarray:
    """Per-map min-max to [0, 1]. [K, h, w] -> float32 numpy [K, h, w]."""
    k, h, w = refined.shape
    return minmax(refined.flatten(1)).reshape(k, h, w).cpu().numpy()


def upsample(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """§3.4 step 6: bilinear (OpenCV) resize of each [h, w] map to the image size. -> [K, H, W] float32."""
    height, width = size
    out = np.empty((len(maps), height, width), dtype=np.float32)
    for i, r in enumerate(maps):
        out[i] = cv2.resize(r, (width, height), interpolation=cv2.INTER_LINEAR)
    return out
