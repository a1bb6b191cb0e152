"""SAM's automatic masks for an image, loaded from local weights and cached on disk (CAR_SPEC §7.5).

Variants are data (conf/postprocess/sam*.yaml): `variant` picks the package — `hq`: HQ-SAM
(PyPI `segment-anything-hq`, the paper's setting, `sam_hq_vit_h.pth`) or `sam`: Meta's
`segment-anything` (`sam_vit_h_4b8939.pth`) — and `encoder` gives the image encoder's size
(ViT-H: width 1280, 32 blocks, 16 heads, global attention at 7/15/23/31). Weights come only from
a local file, read with `weights_only=True`; `checkpoint: random` builds a randomly initialised
model (tests and timing only, with a loud warning).

SAM's masks depend only on the image and SAM's settings, so they are cached per image under
`<cache_dir>/sam/`, keyed by the image's bytes, the settings and the weights' content hash:
threshold sweeps and re-runs pay for SAM once.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import torch

from car.errors import CarError
from car.hashing import file_sha256
from car.settings.enums import SAM_VARIANTS

log = logging.getLogger(__name__)

PACKAGES = {"hq": ("segment_anything_hq", "segment-anything-hq"), "sam": ("segment_anything", "segment-anything")}
GENERATOR_KEYS = ("points_per_side", "points_per_batch", "pred_iou_thresh", "stability_score_thresh",
                  "box_nms_thresh", "crop_n_layers", "min_mask_region_area")


def _package(variant: str):
    if variant not in SAM_VARIANTS:
        raise CarError(f"postprocess.variant must be one of {sorted(SAM_VARIANTS)}, got '{variant}'.")
    module, dist = PACKAGES[variant]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise CarError(f"postprocess=sam with variant '{variant}' needs the package {dist}: "
                       f"pip install -e '.[sam]' (or pip install {dist}).") from None


def load_sam(variant: str, encoder: dict, checkpoint: str | None, seed: int = 0) -> torch.nn.Module:
    """Build SAM of the given encoder size and load a local checkpoint (or random init)."""
    _package(variant)
    # the package's own builder, parameterised by the encoder's size
    build = importlib.import_module(f"{PACKAGES[variant][0]}.build_sam")._build_sam
    arch = {"encoder_embed_dim": int(encoder["embed_dim"]), "encoder_depth": int(encoder["depth"]),
            "encoder_num_heads": int(encoder["num_heads"]),
            "encoder_global_attn_indexes": [int(i) for i in encoder["global_attn_indexes"]]}
    if checkpoint in (None, "random", "null"):
        log.warning("SAM (%s) is RANDOMLY INITIALISED: its masks are meaningless (tests and timing only).", variant)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build(**arch, checkpoint=None).eval()
    path = Path(str(checkpoint)).expanduser()
    if not path.is_file():
        raise CarError(f"SAM checkpoint '{path}' does not exist: download it once (HQ-SAM ViT-H is "
                       f"sam_hq_vit_h.pth) and pass postprocess.checkpoint=/path/to/file, since nothing can be "
                       f"downloaded offline.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, OSError) as err:
        raise CarError(f"SAM checkpoint '{path}' is not a plain PyTorch state dict ({type(err).__name__}); "
                       f"only weights files are accepted.") from None
    state = state.get("model", state) if isinstance(state, dict) else state
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CarError(f"SAM checkpoint '{path}' holds no state dict of tensors.")
    sam = build(**arch, checkpoint=None)
    missing, unexpected = sam.load_state_dict(state, strict=False)
    if missing:
        raise CarError(f"SAM checkpoint '{path}' does not fit variant '{variant}' with encoder {encoder}: "
                       f"{len(missing)} weights missing (e.g. {missing[0]}).")
    if unexpected:
        log.warning("SAM checkpoint %s: %d unused entries (e.g. %s)", path, len(unexpected), unexpected[0])
    return sam.eval()


def sam_identity(variant: str, encoder: dict, checkpoint: str | None, seed: int = 0) -> str:
    """Changes whenever the weights could change: file content hash, or the random-init seed."""
    if checkpoint in (None, "random", "null"):
        return f"{variant}:{json.dumps(dict(encoder), sort_keys=True)}:random-init:seed={seed}"
    path = Path(str(checkpoint)).expanduser()
    return f"{variant}:sha256:{file_sha256(path) if path.is_file() else 'missing'}"


class SamMaskCache:
    """Bit-packed mask stacks, one .npz per (image, settings, weights) key, written atomically."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def load(self, key: str) -> np.ndarray | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as f:
                n, h, w = (int(v) for v in f["shape"])
                return np.unpackbits(f["bits"], axis=1, count=h * w).reshape(n, h, w).astype(bool)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
            log.warning("SAM cache entry %s unreadable (%s): recomputing it", path, type(err).__name__)
            return None

    def save(self, key: str, masks: np.ndarray) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
        bits = np.packbits(masks.reshape(len(masks), -1), axis=1)  # [N, ceil(H*W/8)]
        np.savez_compressed(tmp, bits=bits, shape=np.array(masks.shape, dtype=np.int64))
        os.replace(tmp, path)


class SamMaskGenerator:
    """image [H, W, 3] uint8 RGB -> SAM's automatic masks [N, H, W] bool (cached)."""

    def __init__(self, sam: torch.nn.Module, variant: str, settings: dict, identity: str,
                 cache_dir: str | Path | None = None):
        self.sam = sam
        self.variant = variant
        self.settings = {k: settings[k] for k in GENERATOR_KEYS if settings.get(k) is not None}
        self._generator = _package(variant).SamAutomaticMaskGenerator(sam, output_mode="binary_mask", **self.settings)
        self._key_base = json.dumps({"identity": identity, "settings": self.settings}, sort_keys=True)
        self.cache = SamMaskCache(cache_dir) if cache_dir else None
        self.hits = 0
        self.misses = 0

    def key(self, image: np.ndarray) -> str:
        digest = hashlib.sha256(self._key_base.encode())
        digest.update(str(image.shape).encode())
        digest.update(np.ascontiguousarray(image).tobytes())
        return digest.hexdigest()

    def __call__(self, image: np.ndarray) -> np.ndarray:
        key = self.key(image) if self.cache else None
        if self.cache:
            masks = self.cache.load(key)
            if masks is not None and masks.shape[1:] == image.shape[:2]:
                self.hits += 1
                return masks
        self.misses += 1
        records = self._generator.generate(np.ascontiguousarray(image))  # runs under torch.no_grad
        h, w = image.shape[:2]
        masks = np.stack([r["segmentation"] for r in records]).astype(bool) if records else np.zeros((0, h, w), bool)
        if self.cache:
            self.cache.save(key, masks)
        return masks
