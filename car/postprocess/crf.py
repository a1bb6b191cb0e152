"""Post-processing: dense CRF over the final maps and the semantic label map (CAR_SPEC §7).

    image [H, W, 3] uint8 + maps [K, H, W] --semantic_masks()--> masks [K, H, W] bool
    masks + scores + label ids --paint_label_map()--> label map [H, W] int64
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CRF_MEAN_BGR = np.array([104.008, 116.669, 122.675])


def crf_image(image: np.ndarray, mode: str = "official_wrapped") -> np.ndarray:
    """Colour image for the bilateral kernel, C-contiguous [H, W, 3] uint8.

    "official_wrapped" (quirk Q18): RGB -> BGR, minus the BGR mean, C-cast to uint8, i.e.
    truncation toward zero then wrap-around modulo 256 (written explicitly so that every
    platform gives the x86 result). "rgb": the plain image.
    """
    if mode == "rgb":
        return np.ascontiguousarray(image, dtype=np.uint8)
    if mode != "official_wrapped":
        raise ValueError(f"crf image mode must be 'official_wrapped' or 'rgb', got {mode!r}")
    shifted = image[..., ::-1].astype(np.float64) - CRF_MEAN_BGR
    return np.ascontiguousarray(np.mod(np.trunc(shifted).astype(np.int64), 256).astype(np.uint8))


@dataclass
class DenseCRF:
    """pydensecrf's DenseCRF2D with CaR's kernels (Potts, diagonal, symmetric normalisation)."""

    iterations: int = 10
    gaussian_sxy: float = 1.0
    gaussian_compat: float = 3.0
    bilateral_sxy: float = 67.0
    bilateral_srgb: float = 3.0
    bilateral_compat: float = 4.0
    image_mode: str = "official_wrapped"

    def __call__(self, image: np.ndarray, probs: np.ndarray) -> np.ndarray:
        """probs [C, H, W] unnormalised "probabilities" -> labels [H, W] int64 (argmax of marginals)."""
        import pydensecrf.densecrf as dcrf

        c, h, w = probs.shape
        unary = -np.log(np.clip(probs, 1e-5, 1.0)).reshape(c, h * w)  # U = -ln clip(P, 1e-5, 1)
        crf = dcrf.DenseCRF2D(w, h, c)
        crf.setUnaryEnergy(np.ascontiguousarray(unary, dtype=np.float32))
        crf.addPairwiseGaussian(sxy=self.gaussian_sxy, compat=self.gaussian_compat)
        crf.addPairwiseBilateral(sxy=self.bilateral_sxy, srgb=self.bilateral_srgb,
                                 rgbim=crf_image(image, self.image_mode), compat=self.bilateral_compat)
        marginals = np.array(crf.inference(self.iterations)).reshape(c, h, w)
        return marginals.argmax(axis=0).astype(np.int64)


def crf_probabilities(maps: np.ndarray, bg_factor: float = 1.0, background: bool = True) -> np.ndarray:
    """§7.1 CRF input: [(1 - max_k M_k)^β ; M_1..M_K] (not renormalised, Q20), or the maps alone
    without a background channel. maps [K, H, W] -> float32 [K+1 or K, H, W]."""
    if not background:
        return maps.astype(np.float32)
    bg = (1.0 - maps.max(axis=0, keepdims=True)) ** bg_factor
    return np.concatenate([bg, maps]).astype(np.float32)


def semantic_masks(image: np.ndarray, maps: np.ndarray, crf: DenseCRF | None, bg_factor: float = 1.0,
                   background: bool = True) -> np.ndarray:
    """§7.1: one joint labelling over [background, M_1..M_K]; mask_k = (label == k). -> [K, H, W] bool.

    background=False drops the background channel (every pixel gets a query: the peers' VOC-20
    protocol, where no background class is predicted). crf=None takes the plain argmax.
    """
    k = maps.shape[0]
    if k == 0:
        return np.zeros((0,) + image.shape[:2], dtype=bool)
    probs, offset = crf_probabilities(maps, bg_factor, background), int(background)
    labels = crf(image, probs) if crf is not None else probs.argmax(axis=0)
    return labels[None] == (np.arange(k) + offset)[:, None, None]


def binary_mask(image: np.ndarray, soft_map: np.ndarray, crf: DenseCRF | None, bg_factor: float = 1.0) -> np.ndarray:
    """§7.2: a separate two-class CRF [(1 - M)^β, M] for one query. -> [H, W] bool."""
    probs = np.stack([(1.0 - soft_map) ** bg_factor, soft_map]).astype(np.float32)
    labels = crf(image, probs) if crf is not None else probs.argmax(axis=0)
    return labels == 1


def paint_label_map(masks: np.ndarray, scores: np.ndarray, label_ids, shape,
                    base: np.ndarray | None = None) -> np.ndarray:
    """§7.3: paint masks with their label ids in ascending score order (higher score wins overlaps),
    skipping score-0 (pruned) queries. masks [K, H, W] bool, scores [K] -> [H, W] int64 (0 = bg)."""
    out = np.zeros(shape, dtype=np.int64) if base is None else base.copy()
    for k in np.argsort(scores, kind="stable"):
        if scores[k] > 0:
            out[masks[k]] = label_ids[k]
    return out
