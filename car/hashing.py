"""Content hashes that identify inputs (weights files) in run keys and caches.

Shared by the prediction store (car/run/store.py: a run's key) and the SAM mask cache
(car/postprocess/sam/generator.py: which SAM weights made a mask), so neither imports the other.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path


def file_sha256(path: str | Path) -> str:
    """Content hash of a file, computed once per (path, size, mtime)."""
    st = Path(path).stat()
    return _file_sha256(str(path), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=16)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
