"""Shared by the RefCOCO tests: where the real-format sample lives, and a hostile pickle payload."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.conftest import REPO, SHARED_DATA, needs_shared_data  # noqa: F401  (REPO re-exported)

SAMPLE = SHARED_DATA / "refcoco"
REFS = {"refcoco": "refcoco/refs(unc).p", "refcoco+": "refcoco+/refs(unc).p", "refcocog": "refcocog/refs(umd).p"}

needs_sample = needs_shared_data("refcoco/refcoco/instances.json")


def tmp_root(tmp_path: Path, dataset: str = "refcoco") -> Path:
    """A writable copy of one dataset folder of the sample; images are symlinked (read-only)."""
    root = tmp_path / "root"
    shutil.copytree(SAMPLE / dataset, root / dataset)
    (root / "images").symlink_to(SAMPLE / "images", target_is_directory=True)
    return root


class TouchMarker:
    """Unpickling this runs `touch <marker>`: proof that a loader executed pickle code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))
