"""The restricted refs unpickler (car/data/safe_pickle.py): no globals at all, bombs refused, fuzzed."""

from __future__ import annotations

import io
import pickle

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from car.data.safe_pickle import safe_load
from car.errors import CarError
from tests.refcoco_helpers import REFS, SAMPLE, TouchMarker, needs_sample

# ---------------------------------------------------------------------------------- safe pickle


class _Eval:
    def __reduce__(self):
        return (eval, ("1 + 1",))


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_os_system_pickle_rejected_and_not_run(tmp_path, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "refs(unc).p"
    path.write_bytes(pickle.dumps([{"ref_id": 0}, TouchMarker(marker)], protocol=protocol))
    with pytest.raises(CarError, match=r"refusing to load .*refs\(unc\)\.p: it references (posix|os)\.system"):
        safe_load(path)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4])
def test_eval_pickle_rejected(tmp_path, protocol):
    path = tmp_path / "x.p"
    path.write_bytes(pickle.dumps({"a": _Eval()}, protocol=protocol))
    with pytest.raises(CarError, match=r"references (builtins|__builtin__)\.eval, which a refs file never needs"):
        safe_load(path)


def test_persistent_id_rejected():
    with pytest.raises(CarError, match="persistent"):
        safe_load(io.BytesIO(b"\x80\x02K\x01Q."))  # BININT1 1, BINPERSID


@needs_sample
@pytest.mark.parametrize("dataset", sorted(REFS))
def test_real_refs_files_load(dataset):
    refs = safe_load(SAMPLE / REFS[dataset])
    assert isinstance(refs, list) and len(refs) == 13
    assert refs == pickle.loads((SAMPLE / REFS[dataset]).read_bytes())  # same result as plain pickle
    with open(SAMPLE / REFS[dataset], "rb") as f:  # file objects work too
        assert safe_load(f) == refs


@needs_sample
def test_truncated_and_empty_pickles(tmp_path):
    data = (SAMPLE / REFS["refcoco"]).read_bytes()
    for cut in (1, 2, 10, len(data) // 2, len(data) - 1):
        path = tmp_path / f"cut{cut}.p"
        path.write_bytes(data[:cut])
        with pytest.raises(CarError, match=r"cut\d+\.p is truncated or corrupt"):
            safe_load(path)
    (tmp_path / "empty.p").write_bytes(b"")
    with pytest.raises(CarError, match="empty"):
        safe_load(tmp_path / "empty.p")
    with pytest.raises(CarError, match="does not exist"):
        safe_load(tmp_path / "nope.p")


def test_memory_bombs_rejected(tmp_path):
    # LONG_BINPUT at index 2**32-1 would make CPython allocate and zero a ~64 GiB memo array
    with pytest.raises(CarError, match="memo entry"):
        safe_load(io.BytesIO(b"\x80\x02]r\xff\xff\xff\xff."))
    # BINBYTES8 / BINUNICODE claiming 1 TiB of payload
    with pytest.raises(CarError, match="truncated or corrupt"):
        safe_load(io.BytesIO(b"\x80\x04\x8e" + (1 << 40).to_bytes(8, "little") + b"."))
    with pytest.raises(CarError, match="truncated or corrupt"):
        safe_load(io.BytesIO(b"\x80\x02X\xff\xff\xff\x7f."))
    big = tmp_path / "big.p"
    big.write_bytes(pickle.dumps(list(range(1000)), protocol=2))
    with pytest.raises(CarError, match="byte limit"):
        safe_load(big, max_bytes=100)
    with pytest.raises(CarError, match="byte limit"):
        safe_load(io.BytesIO(big.read_bytes()), max_bytes=100)


def test_python2_style_byte_strings_decode():
    # protocol 0/2 py2 pickles of str use STRING/SHORT_BINSTRING; utf-8 first, latin-1 fallback
    assert safe_load(io.BytesIO(b"\x80\x02U\x03abcq\x00.")) == "abc"
    assert safe_load(io.BytesIO(b"\x80\x02U\x02\xc3\xa9.")) == "\u00e9"  # utf-8 bytes
    assert safe_load(io.BytesIO(b"\x80\x02U\x01\xe9.")) == "\u00e9"  # latin-1 byte


def _check_load_or_car_error(data: bytes):
    try:
        safe_load(io.BytesIO(data))
    except CarError:
        pass


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(data):
    _check_load_or_car_error(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_mutated_real_pickle(data):
    path = SAMPLE / REFS["refcoco+"]
    base = path.read_bytes() if path.is_file() else pickle.dumps([{"a": [1, "b", 2.5, None, True]}], protocol=2)
    buf = bytearray(base)
    for _ in range(data.draw(st.integers(1, 8))):
        kind = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        pos = data.draw(st.integers(0, max(len(buf) - 1, 0)))
        if kind == "flip" and buf:
            buf[pos] = data.draw(st.integers(0, 255))
        elif kind == "insert":
            buf[pos:pos] = data.draw(st.binary(min_size=1, max_size=9))
        elif kind == "delete" and buf:
            del buf[pos:pos + data.draw(st.integers(1, 16))]
        elif kind == "truncate":
            del buf[pos:]
    _check_load_or_car_error(bytes(buf))


