"""Verify and safely extract downloaded dataset archives; pick split ids to check.

Shared by the preparation scripts ``datasets/<name>/prepare.py`` (``datasets/`` itself is not a
package, so that it never shadows HuggingFace ``datasets``). Standard library + numpy only.

* ``digest_of`` / ``check_digest``: streamed digest of a download (md5, or the sha1 some hosts publish)
  and the one-line mismatch error.
* ``safe_extract_tar`` / ``safe_extract_zip``: check *every* member before writing anything and
  refuse the whole archive if one is unsafe: an absolute or drive-letter path, a ``..`` component,
  a symbolic or hard link (none of the official archives has one), a device or fifo.
  Tar extraction also goes through the stdlib ``filter="data"`` where Python has it;
  ``zip_names`` lists a zip's members when its destination depends on them.
* ``read_ids`` / ``evenly_spaced``: read a split list; choose ``n`` ids spread over it.

Every problem raises ``PrepareError`` whose message is the single line a script prints.
"""

from __future__ import annotations

import hashlib
import stat
import tarfile
import zipfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

import numpy as np

CHUNK = 1 << 20


class PrepareError(Exception):
    """A problem that stops preparation; its message is the single line shown to the user."""


# ----------------------------------------------------------------------------------------- digests


def digest_of(path: Path, algorithm: str = "md5", chunk_size: int = CHUNK) -> str:
    """Hex digest of a file (hashlib ``algorithm``), streamed in chunks (the archives are up to a few GB)."""
    digest = hashlib.new(algorithm)  # integrity check against the published hash, not security
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def check_digest(path: Path, want: str, name: str, algorithm: str = "md5", skip_flag: str = "--skip-md5") -> None:
    """Raise PrepareError unless the file at ``path`` has the published ``algorithm`` digest ``want``."""
    got = digest_of(path, algorithm)
    if got != want:
        raise PrepareError(
            f"{algorithm} mismatch for {path}: got {got}, expected {want} for {name}; the download is corrupt or a "
            f"different file (download it again, or pass {skip_flag} if intended)."
        )


# ------------------------------------------------------------------------------------ member checks


def _unsafe_path(name: str) -> str | None:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in path.parts:
        return "'..' in path"
    return None


def unsafe_tar_member(member: tarfile.TarInfo) -> str | None:
    """Why a tar member must not be extracted, or None if it may be."""
    reason = _unsafe_path(member.name)
    if reason is None and member.isdev():
        reason = "device or fifo member"
    if reason is None and (member.issym() or member.islnk()):
        reason = f"link member to {member.linkname!r}; the official archives have none"
    return reason


def unsafe_zip_member(info: zipfile.ZipInfo) -> str | None:
    """Why a zip member must not be extracted (its Unix mode bits name the link/device types), or None."""
    reason = _unsafe_path(info.filename)
    mode = info.external_attr >> 16
    if reason is None and mode and (
        stat.S_ISLNK(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode)
    ):
        reason = "link or device member"
    return reason


def _refuse_unsafe(archive: Path, checked: Iterable[tuple[str, str | None]], name: str, readme: str) -> None:
    """Raise PrepareError for the first (member name, reason) whose reason is not None."""
    for member, reason in checked:
        if reason is not None:
            raise PrepareError(
                f"refusing to extract {archive}: member {member!r} has an unsafe path or type ({reason}); nothing "
                f"was extracted. Download {name} again from the official host (see {readme})."
            )


def _broken(archive: Path, exc: Exception, name: str, readme: str) -> PrepareError:
    return PrepareError(
        f"could not extract {archive}: {exc}; the file is probably truncated or not {name} "
        f"(download it again, see {readme})."
    )


def _require_file(path: Path, kind: str, name: str, readme: str) -> None:
    if not path.is_file():
        raise PrepareError(f"{kind} not found: {path}; download {name} (see {readme}).")


# ----------------------------------------------------------------------------------------- extract


def safe_extract_tar(tar_path: Path, dest: Path, *, name: str, readme: str) -> int:
    """Check ``tar_path`` (exists) and every member, then extract it under ``dest``.

    ``name`` is the official file name and ``readme`` the page to point at in messages. A tar with a
    single unsafe member leaves ``dest`` untouched. Returns the number of members.
    """
    _require_file(tar_path, "tar", name, readme)
    try:
        with tarfile.open(tar_path, "r:*") as tar:
            members = tar.getmembers()
            _refuse_unsafe(tar_path, ((m.name, unsafe_tar_member(m)) for m in members), name, readme)
            dest.mkdir(parents=True, exist_ok=True)
            if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 / 3.12: stdlib-enforced safety as well
                tar.extractall(dest, members=members, filter="data")
            else:  # pragma: no cover - old Python; the checks above already rejected unsafe members
                tar.extractall(dest, members=members)  # noqa: S202
    except PrepareError:
        raise
    except (tarfile.TarError, OSError) as exc:
        raise _broken(tar_path, exc, name, readme) from exc
    return len(members)


def zip_names(zip_path: Path, *, name: str, readme: str) -> list[str]:
    """Member names of ``zip_path`` (to decide where it goes before extracting)."""
    _require_file(zip_path, "zip", name, readme)
    try:
        with zipfile.ZipFile(zip_path) as zf:
            return zf.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise _broken(zip_path, exc, name, readme) from exc


def safe_extract_zip(zip_path: Path, dest: Path, *, name: str, readme: str, keep_prefix: str = "") -> int:
    """Check every member of ``zip_path``, then extract those under ``keep_prefix`` into ``dest``.

    macOS ``__MACOSX/`` entries are skipped; zipfile checks CRCs while reading. Refuses an archive
    with no member to extract. Returns the number of files (not folders) extracted.
    """
    _require_file(zip_path, "zip", name, readme)
    try:
        with zipfile.ZipFile(zip_path) as zf:
            infos = zf.infolist()
            _refuse_unsafe(zip_path, ((i.filename, unsafe_zip_member(i)) for i in infos), name, readme)
            members = [
                i for i in infos if i.filename.startswith(keep_prefix) and not i.filename.startswith("__MACOSX")
            ]
            if not members:
                under = f" under {keep_prefix!r}" if keep_prefix else ""
                raise PrepareError(f"{zip_path} has no members{under}; it is not {name} (see {readme}).")
            dest.mkdir(parents=True, exist_ok=True)
            for info in members:
                zf.extract(info, dest)
    except PrepareError:
        raise
    except zipfile.BadZipFile as exc:
        raise _broken(zip_path, exc, name, readme) from exc
    except OSError as exc:
        raise PrepareError(f"extracting {zip_path} failed ({exc}): check free disk space and permissions.") from exc
    return sum(1 for info in members if not info.is_dir())


# --------------------------------------------------------------------------------------------- ids


def read_ids(path: Path) -> list[str]:
    """The non-empty, stripped lines of a split list (one image id per line)."""
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def evenly_spaced(ids: list[str], n: int | None) -> list[str]:
    """``n`` ids spread evenly over ``ids`` (first and last included), in order; all of them if ``n`` is None."""
    if n is None or n >= len(ids):
        return list(ids)
    if n <= 0:
        return []
    idx = np.linspace(0, len(ids) - 1, n).round().astype(int)
    return [ids[i] for i in sorted(set(idx.tolist()))]
