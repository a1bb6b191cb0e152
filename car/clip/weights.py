"""Where a backbone's CLIP weights come from, decided before any model is built.

`locate(spec)` answers without loading a model and without downloading: random init
(`pretrained: null`), a local file, a file already in a local cache (the Hugging Face hub cache
or open_clip's ~/.cache/clip, where open_clip itself would put it), a download (the tag is not
cached and its host is reachable), or missing. A cached tag is then loaded straight from the
cached file, so a run with the weights in the cache never waits on the network, whatever
`HF_HUB_OFFLINE` says.

`missing_weights(backbone)` lists every missing weight of a run's backbone config (what, why, the
override that supplies a local file); `car.run.inputs` turns them into the sentence a run stops with.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

from car.errors import CarError

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
ROLES = ("proposal", "classifier")
HF_WEIGHTS = "open_clip_pytorch_model.bin"  # open_clip's default file name in a hub repository


@dataclass(frozen=True)
class Weights:
    """kind: random | file | cached | download | missing. `path`: the file to load (file, cached)."""

    kind: str
    arch: str
    pretrained: str | None
    path: Path | None = None
    tag_cfg: dict | None = None  # open_clip's pretrained entry (mean, std, quick_gelu, ...) for tags


def normalise(pretrained) -> str | None:
    return None if pretrained in (None, "", "null", "none") else str(pretrained)


def is_file_spec(pretrained: str) -> bool:
    return pretrained.endswith(CHECKPOINT_SUFFIXES) or os.sep in pretrained or Path(pretrained).exists()


def _can_connect(host: str, port: int, timeout: float) -> bool:
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def reachable(host: str, port: int = 443, timeout: float = 2.0) -> bool:
    """Whether `host` accepts a connection (asked once per process); False at once under HF_HUB_OFFLINE."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    return _reachable(host, port, timeout)


@lru_cache(maxsize=8)
def _reachable(host: str, port: int, timeout: float) -> bool:
    """The name lookup runs in a daemon thread so that a hanging DNS cannot stall the run (or its
    exit) past timeout + 1 s."""
    answer: list[bool] = []
    probe = threading.Thread(target=lambda: answer.append(_can_connect(host, port, timeout)), daemon=True)
    probe.start()
    probe.join(timeout + 1.0)
    return bool(answer and answer[0])


def _hf_candidates(hf_hub: str) -> tuple[str, list[str]]:
    """open_clip's `org/repo/` or `org/repo/file` entry -> (repo id, file names it would fetch, in order)."""
    repo_id, filename = os.path.split(hf_hub)
    filename = filename or HF_WEIGHTS
    stem, suffix = os.path.splitext(filename)
    safe = "open_clip_model.safetensors" if filename == HF_WEIGHTS else (
        f"{stem}.safetensors" if suffix in (".bin", ".pth") else None)
    return repo_id, [name for name in (safe, filename) if name]


def _source(tag_cfg: dict) -> tuple[str, str]:
    """("hf", "org/repo/") or ("url", url): where open_clip downloads this tag from (the hub first)."""
    if tag_cfg.get("hf_hub"):
        return "hf", tag_cfg["hf_hub"]
    return "url", tag_cfg.get("url", "")


def cached_file(tag_cfg: dict) -> Path | None:
    """The tag's weights file in the local cache open_clip downloads into, or None."""
    kind, where = _source(tag_cfg)
    if kind == "url":
        path = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(where)
        return path if where and path.is_file() else None
    from huggingface_hub import try_to_load_from_cache

    repo_id, names = _hf_candidates(where)
    for name in names:
        found = try_to_load_from_cache(repo_id, name)
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


def endpoint_of(tag_cfg: dict) -> tuple[str, int]:
    """(host, port) open_clip would download the tag from (the hub honours HF_ENDPOINT)."""
    kind, where = _source(tag_cfg)
    url = urlparse((os.environ.get("HF_ENDPOINT") or "https://huggingface.co") if kind == "hf" else where)
    return url.hostname or "", url.port or (80 if url.scheme == "http" else 443)


def locate(spec, role: str = "backbone") -> Weights:
    """Where `spec`'s weights are (see the module doc). Unknown architectures and tags are CarErrors."""
    arch = str(spec["arch"])
    pretrained = normalise(spec.get("pretrained"))
    if pretrained is None:
        return Weights("random", arch, None)
    if is_file_spec(pretrained):
        path = Path(pretrained).expanduser()
        return Weights("file" if path.is_file() else "missing", arch, pretrained, path)
    import open_clip

    tags = open_clip.list_pretrained_tags_by_model(arch)
    if pretrained not in tags:
        raise CarError(f"open_clip has no pretrained tag '{pretrained}' for {arch} (backbone.{role}; known: {tags}).")
    tag_cfg = open_clip.get_pretrained_cfg(arch, pretrained)
    path = cached_file(tag_cfg)
    if path is not None:
        return Weights("cached", arch, pretrained, path, tag_cfg)
    return Weights("download" if reachable(*endpoint_of(tag_cfg)) else "missing", arch, pretrained, None, tag_cfg)


def why_missing(weights: Weights) -> str:
    """Why a `missing` weight cannot be loaded, as a parenthesis-sized clause."""
    if weights.tag_cfg is None:
        return "no such file"
    return f"not in the local cache, {endpoint_of(weights.tag_cfg)[0]} unreachable"


def describe_missing(weights: Weights, roles: list[str]) -> str:
    """e.g. "backbone.proposal and backbone.classifier ViT-B-16 'openai'" (file specs: "... file '/x.pt'")."""
    names = " and ".join(f"backbone.{r}" for r in roles)
    what = f"file '{weights.pretrained}'" if weights.tag_cfg is None else f"'{weights.pretrained}'"
    return f"{names} {weights.arch} {what}"


def missing_weights(backbone) -> list[tuple[str, str, str]]:
    """(what, why, override) for every missing weight of a backbone config (its proposal and
    classifier entries; one entry when both name the same weight). Empty when all can be loaded."""
    found: dict[tuple, tuple[Weights, list[str]]] = {}
    for role in ROLES:
        weights = locate(backbone[role], role)
        if weights.kind == "missing":
            found.setdefault((weights.arch, weights.pretrained), (weights, []))[1].append(role)
    return [(describe_missing(weights, roles), why_missing(weights),
             " ".join(f"backbone.{r}.pretrained=/path/to/{weights.arch}.pt" for r in roles))
            for weights, roles in found.values()]
