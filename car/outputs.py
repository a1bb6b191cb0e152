"""Writing results safely: checked output folders, atomic files, no silent replacement, ids as paths.

Every command that writes results (car-evaluate, car-segment, car-demo, report_html, the video
outputs) goes through these helpers, so that:

* the output location is checked before any model loads (`check_output_dir`): a path that is a
  file, a read-only folder or a full disk is one sentence, found by creating the folder and
  writing (then removing) a small probe file, which also catches a read-only mount as root;
* every file is written atomically (`atomic_write` and its `write_*` / `save_image` wrappers): a
  temporary name in the same folder, fsync, then a rename, so a reader sees the old state or the
  whole new file, and a full disk or a kill leaves no half-written result under the real name;
* nothing earlier is replaced unless the caller asks (`overwrite=False` links the finished
  temporary file to its name, which fails if the name exists; `existing_outputs` lists the files a
  run would replace, so a command can refuse before it starts);
* a failed write is one sentence naming the file and the cause (`write_error`: disk full,
  read-only file system, permission denied ...), raised as CarError;
* an id with '/' (Cityscapes' `frankfurt/frankfurt_000000_000000`) names a file in a sub-folder
  (`id_path`), and an id that would leave the folder ('..', an absolute path) is refused.
"""

from __future__ import annotations

import errno
import json
import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

from car.errors import CarError

WRITE_CAUSES = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOTDIR: "a file is in the way of a folder on that path",
    errno.EISDIR: "a folder is in the way of that file",
    errno.ENAMETOOLONG: "the name is too long",
}


def write_error(path: str | Path, err: OSError, what: str = "Cannot write") -> CarError:
    """A one-sentence CarError for an OSError raised while writing `path`."""
    cause = WRITE_CAUSES.get(err.errno) or (err.strerror or type(err).__name__).lower()
    fix = {errno.ENOSPC: "free some space or choose another output folder",
           errno.EDQUOT: "free some space or choose another output folder"}.get(
        err.errno, "choose another output folder")
    return CarError(f"{what} {path}: {cause}; {fix}.")


def id_path(root: str | Path, image_id: str, suffix: str = "") -> Path:
    """`root/<image_id><suffix>`, with each '/' of the id a sub-folder (created by the writers).

    Refuses ids that are empty or would leave `root` (absolute, '..', empty parts, NUL)."""
    text = str(image_id)
    parts = text.split("/")
    if not text or "\0" in text or "\\" in text or any(p in ("", ".", "..") for p in parts):
        raise CarError(f"Sample id {text!r} cannot name an output file (empty, absolute, or with '..' or '\\' "
                       f"parts): fix the dataset's ids.")
    return Path(root).joinpath(*parts[:-1], parts[-1] + suffix)


def check_output_dir(path: str | Path, what: str = "the output folder", create: bool = True) -> Path:
    """Create `path` (and its parents) and prove a file can be written there; CarError otherwise.

    create=False: create nothing, probe the deepest folder of `path` that exists (for a folder that
    someone else creates later, e.g. Hydra's run directory)."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise CarError(f"{what} {path} is a file, not a folder: choose a folder (it is created if missing).")
    where = path
    if not create:
        while not where.exists() and where != where.parent:
            where = where.parent
        if not where.is_dir():
            raise CarError(f"{what} {path} cannot be created: {where} is a file, not a folder; choose another "
                           f"folder.")
    try:
        if create:
            path.mkdir(parents=True, exist_ok=True)
        probe = where / f".car-write-probe.{os.getpid()}"
        with open(probe, "wb") as f:
            f.write(b"car" * 1024)  # a few KB: a full disk refuses it
            f.flush()
            os.fsync(f.fileno())
        probe.unlink()
    except OSError as err:
        raise write_error(path, err, what=f"Cannot write into {what}") from None
    return path


def existing_outputs(paths: Iterable[str | Path]) -> list[Path]:
    """The paths among `paths` that already exist (what a run would replace)."""
    return [Path(p) for p in paths if Path(p).exists()]


def refuse_existing(paths: Iterable[str | Path], how_to_replace: str) -> None:
    """CarError naming the count and the first existing path, unless none exists."""
    found = existing_outputs(paths)
    if found:
        raise CarError(f"{len(found)} output file(s) already exist, e.g. {found[0]}; nothing was replaced: "
                       f"{how_to_replace}.")


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None], overwrite: bool = True) -> Path:
    """Write `path` through `write(file)` atomically: a temporary file next to it, fsync, rename.

    overwrite=False: an existing `path` is never replaced (CarError). On any failure the temporary
    file is removed and `path` is as it was; an OSError becomes a one-sentence CarError."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)  # atomic: readers see the old file or the whole new one
        else:
            _link_new(tmp, path)
    except OSError as err:
        raise write_error(path, err) from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _link_new(tmp: Path, path: Path) -> None:
    """Give the finished `tmp` the name `path` only if that name is free (atomically where links work)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise CarError(f"{path} already exists; nothing was replaced: choose another output folder "
                       f"or ask to overwrite.") from None
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV):
            raise
        if path.exists():  # a file system without hard links: check, then rename
            raise CarError(f"{path} already exists; nothing was replaced: choose another output folder "
                           f"or ask to overwrite.") from None
        os.replace(tmp, path)


def write_bytes(path: str | Path, data: bytes, overwrite: bool = True) -> Path:
    return atomic_write(path, lambda f: f.write(data), overwrite)


def write_text(path: str | Path, text: str, overwrite: bool = True) -> Path:
    return write_bytes(path, text.encode("utf-8"), overwrite)


def finite(value):
    """`value` with every NaN or infinite float (also in nested dicts, lists, tuples) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def strict_json(obj, **kwargs) -> str:
    """JSON that every parser reads: NaN and infinities become null (never the non-standard NaN)."""
    return json.dumps(finite(obj), allow_nan=False, **kwargs)


def write_json(path: str | Path, obj, overwrite: bool = True, **kwargs) -> Path:
    """`obj` as strict JSON (see `strict_json`), written atomically."""
    return write_text(path, strict_json(obj, **kwargs) + "\n", overwrite)


def save_image(image, path: str | Path, overwrite: bool = True, **params) -> Path:
    """A PIL image written atomically, in the format of `path`'s suffix."""
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG"}.get(Path(path).suffix.lower(), Path(path).suffix.lstrip(".").upper())
    return atomic_write(path, lambda f: image.save(f, format=fmt, **params), overwrite)


def save_npz(path: str | Path, overwrite: bool = True, **arrays) -> Path:
    """numpy arrays as a compressed .npz, written atomically (the name keeps its .npz suffix)."""
    import numpy as np

    return atomic_write(path, lambda f: np.savez_compressed(f, **arrays), overwrite)
