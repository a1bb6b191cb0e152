"""Load refer-toolkit ``refs(*).p`` pickles without letting them run code or exhaust memory.

A refs file is a pickle of plain containers and scalars (a list of dicts of str/int/list);
unpickling such data needs *no* importable globals at all — every opcode that builds lists,
dicts, tuples, str, bytes, int, float, bool and None is self-contained. The only way a pickle
can call code is through a global it names (``GLOBAL``/``STACK_GLOBAL``/``INST``/``OBJ``/``EXT*``
all go through ``find_class``) or a persistent id. So:

* ``find_class`` admits only ``ALLOWED_GLOBALS``, which is **empty**: the sample files in
  shared/data/refcoco use only PROTO, EMPTY_LIST/EMPTY_DICT, MARK, APPEND(S), SETITEMS,
  BINUNICODE, BININT*, BINPUT/LONG_BINPUT, BINGET/LONG_BINGET and STOP. Python 2 era files
  (protocol 0-2, byte strings as STRING/BINSTRING, ``long`` as LONG/LONG1) need no globals either.
  Anything else raises ``CarError`` ("refusing to load <file>: it references <module>.<name>,
  which a refs file never needs").
* ``persistent_load`` is refused the same way.

Memory bombs. The file is read whole, capped at ``max_bytes`` (the file size is checked before
reading). Before the C unpickler sees the data, a structural pre-scan (``pickletools.genops``,
which reads opcode arguments from an in-memory buffer and so never allocates more than the file
holds) rejects malformed/truncated data and memo indices larger than the number of opcodes read so far
(real picklers number memo entries 0, 1, 2, ...; CPython grows its
memo array to twice the largest ``PUT`` index and zero-fills it, so a 6-byte pickle with
``LONG_BINPUT 0xffffffff`` would otherwise demand ~64 GiB). Length-prefixed strings/bytes whose
claimed length exceeds the data are rejected by the same scan. The pre-scan costs ~0.1 s/MB.

Every failure caused by the data becomes a one-sentence ``CarError`` naming the file; nothing
else escapes (except real interpreter problems such as KeyboardInterrupt).
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
from pathlib import Path
from typing import IO, Any

from car.errors import CarError

# (module, name) pairs that a refs file may reference. Deliberately empty: no refs file needs one.
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset()

DEFAULT_MAX_BYTES = 1 << 30  # 1 GiB; the real refs files are tens of MB
_MEMO_PUT_OPS = {"PUT", "BINPUT", "LONG_BINPUT"}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], name: str, allowed: frozenset[tuple[str, str]], encoding: str):
        super().__init__(file, encoding=encoding, errors="strict")
        self._name = name
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> Any:  # noqa: D401 - pickle hook
        if (module, name) in self._allowed:
            return super().find_class(module, name)
        raise CarError(
            f"refusing to load {self._name}: it references {module}.{name}, which a refs file never needs "
            f"(the file is corrupt or not a genuine refer-toolkit refs file)."
        )

    def persistent_load(self, pid: Any) -> Any:
        raise CarError(
            f"refusing to load {self._name}: it references a persistent object id, which a refs file never needs."
        )


def _read_capped(path_or_file: str | os.PathLike | IO[bytes], max_bytes: int) -> tuple[bytes, str]:
    """Return (data, display name), refusing anything larger than max_bytes."""
    if isinstance(path_or_file, (str, os.PathLike)):
        path = Path(path_or_file)
        name = str(path)
        if not path.is_file():
            raise CarError(f"Pickle file {name} does not exist: check the dataset path.")
        size = path.stat().st_size
        if size > max_bytes:
            raise CarError(
                f"refusing to load {name}: it is {size} bytes, more than the {max_bytes}-byte limit "
                f"(raise max_bytes if the file is genuine)."
            )
        try:
            with open(path, "rb") as f:
                data = f.read(max_bytes + 1)
        except OSError as exc:
            raise CarError(f"Pickle file {name} cannot be read ({exc}): check its permissions.") from exc
    else:
        name = str(getattr(path_or_file, "name", "<stream>"))
        try:
            data = path_or_file.read(max_bytes + 1)
        except (OSError, ValueError) as exc:
            raise CarError(f"Pickle stream {name} cannot be read ({exc}).") from exc
        if not isinstance(data, (bytes, bytearray)):
            raise CarError(f"Pickle stream {name} is not opened in binary mode: open it with 'rb'.")
        data = bytes(data)
    if len(data) > max_bytes:
        raise CarError(
            f"refusing to load {name}: it is more than the {max_bytes}-byte limit "
            f"(raise max_bytes if the file is genuine)."
        )
    return data, name


def _prescan(data: bytes, name: str) -> None:
    """Structural check of the opcode stream without building any object (see module docstring)."""
    if not data:
        raise CarError(f"Pickle file {name} is empty: re-download or re-extract it.")
    try:
        stopped = False
        # Picklers number memo entries 0, 1, 2, ... so an index can never exceed the opcodes seen so far.
        for n_ops, (op, arg, _pos) in enumerate(pickletools.genops(data)):
            if op.name in _MEMO_PUT_OPS and (not isinstance(arg, int) or not 0 <= arg <= n_ops):
                raise CarError(
                    f"refusing to load {name}: it stores a memo entry at index {arg!r}, "
                    f"beyond any index a pickler writes "
                    f"(corrupt or hostile file)."
                )
            if op.name == "STOP":
                stopped = True
        if not stopped:  # genops stops at STOP; reaching the end without it means truncation
            raise ValueError("no STOP opcode")
    except CarError:
        raise
    except Exception as exc:  # genops raises ValueError mostly; anything else is also a bad file
        raise CarError(
            f"Pickle file {name} is truncated or corrupt ({type(exc).__name__}: {exc}): re-download or re-extract it."
        ) from exc


def safe_load(
    path_or_file: str | os.PathLike | IO[bytes],
    max_bytes: int = DEFAULT_MAX_BYTES,
    allowed_globals: frozenset[tuple[str, str]] = ALLOWED_GLOBALS,
) -> Any:
    """Unpickle a refs file (path or binary file object) that may only contain plain data.

    Python 2 byte strings are decoded as UTF-8 (a superset of the ASCII that Python 3's default
    assumes); if that fails the whole file is re-read as latin-1, which never fails.

    Raises:
        CarError: file missing/too large/truncated/corrupt, or it references a global outside
            ``allowed_globals`` (nothing is imported or called in that case).
    """
    data, name = _read_capped(path_or_file, max_bytes)
    _prescan(data, name)
    last_exc: Exception | None = None
    for encoding in ("utf-8", "latin1"):
        try:
            return _RestrictedUnpickler(io.BytesIO(data), name, frozenset(allowed_globals), encoding).load()
        except CarError:
            raise
        except UnicodeDecodeError as exc:
            last_exc = exc
            continue
        except RecursionError as exc:
            raise CarError(f"refusing to load {name}: it is nested too deeply (corrupt or hostile file).") from exc
        except Exception as exc:  # UnpicklingError, EOFError, ValueError, TypeError, MemoryError, ...
            raise CarError(
                f"Pickle file {name} is truncated or corrupt ({type(exc).__name__}: {exc}): "
                f"re-download or re-extract it."
            ) from exc
    raise CarError(f"Pickle file {name} has undecodable text ({last_exc}): re-download or re-extract it.")
