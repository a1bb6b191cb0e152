"""Per-image prediction store: what makes long runs resumable.

Each finished image's prediction is written to

    <output_dir>/predictions/<run key>/<image_id>.npz     (pred [H, W] + its info as JSON)

atomically (temporary file, then rename), so a killed run leaves only whole files. Re-running
with the same output directory (`hydra.run.dir=<dir>`) loads finished images instead of
recomputing them, and the final metrics equal those of an uninterrupted run.

The run key hashes everything that can change a prediction: the resolved method, dataset and
backbone config, the seed, and the identity of the weights (file content hash, or open_clip
tag, or "random init"). Any such change gives a new key, so stale predictions are never reused.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

import car
from car.errors import CarError
from car.hashing import file_sha256
from car.outputs import atomic_write, id_path, write_error

# Config keys that cannot change a prediction (where to write, how to log, how many at once).
_IGNORED_DATASET_KEYS = ("limit",)


def weights_identity(spec) -> str:
    """A string that changes whenever the weights a backbone spec loads could change."""
    pretrained = spec.get("pretrained")
    if pretrained and Path(str(pretrained)).is_file():
        return f"{spec['arch']}:sha256:{file_sha256(pretrained)}"
    return f"{spec['arch']}:{pretrained or 'random-init'}:quick_gelu={spec.get('quick_gelu', False)}"


def postprocess_identity(cfg: DictConfig) -> dict | None:
    """The post-processing settings, plus the SAM weights' identity when SAM refines the masks."""
    if "postprocess" not in cfg:
        return None
    post = OmegaConf.to_container(cfg.postprocess, resolve=True)
    if post.get("name") == "sam":
        from car.postprocess.sam.generator import sam_identity

        post["weights"] = sam_identity(post["variant"], post["encoder"], post.get("checkpoint"), cfg.seed)
    return post


def run_key(cfg: DictConfig) -> str:
    dataset = OmegaConf.to_container(cfg.dataset, resolve=True)
    for key in _IGNORED_DATASET_KEYS:
        dataset.pop(key, None)
        dataset.get("loader", {}).pop(key, None)
    payload = {
        "car": OmegaConf.to_container(cfg.car, resolve=True),
        "dataset": dataset,
        "backbone": [weights_identity(cfg.backbone.proposal), weights_identity(cfg.backbone.classifier)],
        "method": OmegaConf.to_container(cfg.method, resolve=True) if "method" in cfg else None,
        "postprocess": postprocess_identity(cfg),
        "seed": cfg.seed,
        "version": car.__version__,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


class DamagedPrediction(CarError):
    """A stored prediction that cannot be read (torn, truncated or overwritten by something else)."""


class PredictionStore:
    """Finished predictions under `<root>/predictions/<key>/`; an id with '/' is a sub-folder
    (car/outputs.py `id_path`). A damaged file is reported as `DamagedPrediction` (the predictor
    recomputes the image, counts it and replaces the file)."""

    def __init__(self, root: str | Path, key: str):
        self.dir = Path(root) / "predictions" / key
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise write_error(self.dir, err) from None
        self.key = key

    def _path(self, image_id: str) -> Path:
        return id_path(self.dir, str(image_id), ".npz")

    def has(self, image_id: str) -> bool:
        return self._path(image_id).is_file()

    def save(self, image_id: str, pred: np.ndarray, info: dict) -> Path:
        arrays = {"pred": pred.astype(np.int16), "info": np.array(json.dumps(info))}
        return atomic_write(self._path(image_id), lambda f: np.savez_compressed(f, **arrays))

    def load(self, image_id: str) -> tuple[np.ndarray, dict]:
        path = self._path(image_id)
        try:
            with np.load(path, allow_pickle=False) as data:
                return data["pred"].astype(np.int64), json.loads(str(data["info"]))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as err:
            why = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise DamagedPrediction(f"Stored prediction {path} is damaged ({type(err).__name__}: {why}); "
                                    f"it is recomputed.") from None

    def bytes_used(self) -> int:
        return sum(p.stat().st_size for p in self.dir.rglob("*.npz"))
