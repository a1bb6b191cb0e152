"""CLIP text encoding shared by every method: templates filled with a query, and unit-norm text
embeddings cached per string in memory and, with a cache directory, on disk across runs."""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import re
import tempfile
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
import torch.nn.functional as F

from car.clip.load import ClipModel

log = logging.getLogger(__name__)


def fill(template: str, query: str) -> str:
    return template.replace("{}", query)


_LIVE: weakref.WeakSet[TextEncoder] = weakref.WeakSet()


def flush_all() -> None:
    """Write every live encoder's new embeddings to its disk cache (also run at exit)."""
    for encoder in list(_LIVE):
        encoder.flush()


atexit.register(flush_all)


_DIGESTS: weakref.WeakKeyDictionary[torch.nn.Module, tuple[tuple, str]] = weakref.WeakKeyDictionary()


DIGEST_THREADS = 2  # hashlib releases the GIL: the tensors are hashed on this many threads


def weights_digest(model: torch.nn.Module) -> str:
    """The identity of the text tower's weights (every state entry outside `visual.`), whatever their
    source (tag, file, seeded random init): sha256 over one line per tensor, name, dtype, shape and
    the sha256 of its bytes (the per-tensor hashes run on DIGEST_THREADS threads).

    Hashing ~250 MB costs about 0.1 s, so the digest is kept per model and reused while every text
    tensor is the same storage at the same in-place version (a weight replaced or modified in
    place, a cast to float16 included, is hashed anew: the key cannot go stale)."""
    tensors = [(name, t) for name, t in sorted(model.state_dict().items()) if not name.startswith("visual.")]
    identity = tuple((name, t.data_ptr(), t._version, t.dtype, tuple(t.shape)) for name, t in tensors)
    known = _DIGESTS.get(model)  # model -> (tensor identities, digest)
    if known is not None and known[0] == identity:
        return known[1]

    def tensor_sha(tensor: torch.Tensor) -> str:
        t = tensor.detach().cpu().contiguous()
        return hashlib.sha256(t.view(-1).view(torch.uint8).numpy() if t.numel() else b"").hexdigest()

    with ThreadPoolExecutor(DIGEST_THREADS) as pool:
        shas = list(pool.map(tensor_sha, [t for _, t in tensors]))
    h = hashlib.sha256(b"car text tower v2\n")
    for (name, t), sha in zip(tensors, shas):
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}:{sha}\n".encode())
    _DIGESTS[model] = (identity, h.hexdigest())
    return h.hexdigest()


def read_cache_file(path: Path, arch: str, digest: str | None) -> dict[str, torch.Tensor]:
    """{text: [D] embedding} from a cache file; a missing, damaged or foreign file is an empty cache."""
    if not path.is_file():
        return {}
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("weights") != digest or payload.get("arch") != arch:
            raise ValueError("key mismatch")
        texts, matrix = payload["texts"], payload["embeddings"]  # n strings, [n, D]
        if not isinstance(matrix, torch.Tensor) or matrix.ndim != 2 or len(texts) != matrix.shape[0]:
            raise ValueError("texts and embeddings do not match")
        return dict(zip(texts, matrix))
    except Exception as err:  # a damaged or foreign file is a cache miss, never an error
        log.warning("ignoring text-embedding cache %s (%s)", path, err)
        return {}


class PendingWrites:
    """Embeddings not yet on disk: cache file -> (text-tower digest, {text: [D] tensor}).

    Owned by one TextEncoder and written by its flush(), by flush_all() at exit, and by a finalizer
    when the encoder is garbage-collected. Each file is merged with what is on disk (entries other
    processes wrote meanwhile are kept) and replaced atomically."""

    def __init__(self, arch: str):
        self.arch = arch
        self.files: dict[str, tuple[str, dict[str, torch.Tensor]]] = {}

    def add(self, path: Path, digest: str, new: dict[str, torch.Tensor]) -> None:
        self.files.setdefault(str(path), (digest, {}))[1].update(new)

    def write(self) -> None:
        for key, (digest, new) in list(self.files.items()):
            if new:
                self._write_file(Path(key), digest, new)
            del self.files[key]

    def write_or_warn(self) -> None:
        """write() for the finalizer: a failure is one warning, not a traceback during garbage collection."""
        try:
            self.write()
        except Exception as err:
            log.warning("text-embedding cache not written (%s)", err)

    def _write_file(self, path: Path, digest: str, new: dict[str, torch.Tensor]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        merged = {**read_cache_file(path, self.arch, digest), **new}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        os.close(fd)
        try:
            torch.save({"arch": self.arch, "weights": digest, "texts": list(merged),
                        "embeddings": torch.stack(list(merged.values()))}, tmp)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; cache files are shareable
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


class TextEncoder:
    """Unit-norm CLIP text embeddings with a per-string cache.

    The in-memory cache lives as long as the encoder (one per CLIP model), so templates,
    background words and class names are embedded once per run, whatever the number of images.
    With `cache_dir`, embeddings also persist on disk across runs (sweeps over η/θ/λ never change
    them): one file per (architecture, text-tower weights hash, device type, autocast dtype),
    holding the texts and one float32 matrix [n, D] of their embeddings (torch.save, read with
    `weights_only=True`; one tensor loads in milliseconds where a tensor per text took ~50 ms).
    """

    SAVE_EVERY_S = 30.0  # new entries are written at most this often, at flush(), at exit and when collected

    def __init__(self, clip: ClipModel, batch_size: int = 8, cache_dir: str | os.PathLike | None = None):
        self.clip = clip
        self.batch_size = batch_size
        self._cache: dict[str, torch.Tensor] = {}
        self.cache_dir = Path(cache_dir) / "text_embeddings" if cache_dir else None
        self._digest: str | None = None
        self._disk: dict[str, dict[str, torch.Tensor]] = {}  # cache file -> its entries (CPU)
        self._pending = PendingWrites(str(clip.arch))  # entries not yet in their cache file
        self._last_save = 0.0
        self.disk_hits = 0
        if self.cache_dir is not None:
            _LIVE.add(self)
            # an encoder dropped before the process ends (a function's local segmenter) still writes
            # what it embedded; the callback holds the pending entries, not the encoder
            weakref.finalize(self, self._pending.write_or_warn)

    @torch.no_grad()
    def __call__(self, texts: list[str]) -> torch.Tensor:
        """texts: n strings -> [n, D] unit-norm embeddings (float32, on the model's device)."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        path = self.cache_path() if missing and self.cache_dir is not None else None
        if path is not None:
            stored = self._load(path)
            found = [t for t in missing if t in stored]
            for t in found:
                self._cache[t] = stored[t].to(self.clip.device)
            self.disk_hits += len(found)
            missing = [t for t in missing if t not in stored]
        for start in range(0, len(missing), self.batch_size):
            chunk = missing[start : start + self.batch_size]
            # always batch_size texts per forward (the last chunk padded with empty strings): a matmul's
            # rows depend on how many rows it has, so a text's embedding would otherwise depend on which
            # texts were embedded with it, and a warm cache could change a pixel (tests/test_scale_out.py)
            padded = chunk + [""] * (self.batch_size - len(chunk))
            tokens = self.clip.tokenizer(padded).to(self.clip.device)  # [batch_size, context]; long texts truncated
            emb = F.normalize(self.clip.model.encode_text(tokens).float(), dim=-1)[: len(chunk)]  # [n, D]
            self._cache.update(zip(chunk, emb))
            if path is not None:
                new = {t: e.detach().cpu().clone() for t, e in zip(chunk, emb)}
                self._disk[str(path)].update(new)
                self._pending.add(path, self._digest, new)
        if missing and path is not None and time.monotonic() - self._last_save > self.SAVE_EVERY_S:
            self.flush()
        if not texts:
            return torch.empty(0, self.embed_dim, device=self.clip.device)
        return torch.stack([self._cache[t] for t in texts])

    @property
    def embed_dim(self) -> int:
        return int(self.clip.model.text_projection.shape[1])

    def cache_path(self) -> Path:
        """This model's cache file for the current device and autocast state."""
        self._digest = weights_digest(self.clip.model)  # cheap after the first call (kept per model)
        device = self.clip.device.type
        mode = str(torch.get_autocast_dtype(device)).replace("torch.", "") if torch.is_autocast_enabled(device) \
            else "fp32"
        arch = re.sub(r"[^A-Za-z0-9._-]", "_", str(self.clip.arch))
        return self.cache_dir / f"{arch}-{self._digest[:16]}-{device}-{mode}.pt"

    def _load(self, path: Path) -> dict[str, torch.Tensor]:
        key = str(path)
        if key not in self._disk:
            self._disk[key] = self._read(path)
        return self._disk[key]

    def _read(self, path: Path) -> dict[str, torch.Tensor]:
        return read_cache_file(path, str(self.clip.arch), self._digest)

    def flush(self) -> None:
        """Merge this encoder's new entries into the cache files (atomic replace)."""
        self._pending.write()
        self._last_save = time.monotonic()
