"""Real file-system faults for tests: a full disk and a read-only folder, even when the tests run as root.

chmod does not stop root, so these mount a small or read-only tmpfs in a private mount namespace
(`unshare -m`) around one subprocess: the mount exists only for that process and vanishes with it.
Where namespaces or mounts are not allowed the test skips with `NO_MOUNT_REASON`; the same cases
are also covered in-process by an injected OSError at the write (`inject_write_error`).
"""

from __future__ import annotations

import errno
import functools
import os
import shlex
import shutil
import subprocess
import sys

import pytest

NO_MOUNT_REASON = "cannot mount a tmpfs in a private mount namespace here (unshare -m needs CAP_SYS_ADMIN)"


@functools.cache
def can_mount() -> bool:
    if shutil.which("unshare") is None or not sys.platform.startswith("linux"):
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=16k tmpfs /mnt"],
                           check=False, capture_output=True, timeout=30)
    return probe.returncode == 0


def run_with_mount(argv: list[str], mount_point, options: str, cwd=None, env=None, timeout: int = 300,
                   prepare: str = "") -> subprocess.CompletedProcess:
    """Run `argv` with a tmpfs (`options`, e.g. "size=64k" or "ro") mounted at `mount_point` for it only.
    `prepare`: shell commands run after mounting, before `argv` (e.g. fill the disk)."""
    if not can_mount():
        pytest.skip(NO_MOUNT_REASON)
    os.makedirs(mount_point, exist_ok=True)
    script = f"mount -t tmpfs -o {shlex.quote(options)} tmpfs {shlex.quote(str(mount_point))} && {prepare or 'true'}" \
             f" && exec {shlex.join(str(a) for a in argv)}"
    return subprocess.run(["unshare", "-m", "sh", "-c", script], check=False, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def inject_write_error(monkeypatch, code: int = errno.ENOSPC, where: str = "fsync") -> None:
    """Make car.outputs' writes fail as a full disk (ENOSPC) or read-only file system (EROFS) does:
    at fsync (after part of the data went out) or at open."""
    import builtins

    import car.outputs

    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    if where == "fsync":
        monkeypatch.setattr(car.outputs.os, "fsync", fail)
    else:
        real_open = builtins.open
        monkeypatch.setattr(car.outputs, "open",
                            lambda file, mode="r", *a, **k: fail() if "w" in mode else real_open(file, mode, *a, **k),
                            raising=False)
