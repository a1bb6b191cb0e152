"""car.data.archives: md5 checks, safe tar/zip extraction, evenly spaced id subsets."""

from __future__ import annotations

import hashlib
import io
import stat
import tarfile
import zipfile

import pytest

from car.data.archives import (
    PrepareError,
    check_digest,
    digest_of,
    evenly_spaced,
    read_ids,
    safe_extract_tar,
    safe_extract_zip,
    unsafe_tar_member,
    unsafe_zip_member,
)

README = "datasets/x/README.md"


def _tar(path, *infos):
    with tarfile.open(path, "w") as tar:
        for info, payload in infos:
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return path


def _file(name, payload=b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    return info, payload


def _link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def test_md5_is_streamed_and_mismatch_names_both_digests(tmp_path):
    f = tmp_path / "blob"
    data = bytes(range(256)) * 5000
    f.write_bytes(data)
    want = hashlib.md5(data).hexdigest()
    assert digest_of(f, chunk_size=1000) == want
    assert digest_of(f, "sha1") == hashlib.sha1(data).hexdigest()
    check_digest(f, want, "blob.tar")  # no error
    with pytest.raises(PrepareError) as exc:
        check_digest(f, "0" * 32, "blob.tar")
    assert str(exc.value) == (
        f"md5 mismatch for {f}: got {want}, expected {'0' * 32} for blob.tar; the download is corrupt or a "
        f"different file (download it again, or pass --skip-md5 if intended)."
    )


def test_missing_archive(tmp_path):
    with pytest.raises(PrepareError, match=r"tar not found: .*a\.tar; download a\.tar \(see datasets/x/README\.md\)"):
        safe_extract_tar(tmp_path / "a.tar", tmp_path / "out", name="a.tar", readme=README)
    with pytest.raises(PrepareError, match="zip not found"):
        safe_extract_zip(tmp_path / "a.zip", tmp_path / "out", name="a.zip", readme=README)


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (_file("../evil"), "'..' in path"),
        (_file("d/../../evil"), "'..' in path"),
        (_file("/etc/evil"), "absolute path"),
        (_file("\\evil"), "absolute path"),
        (_file("C:evil"), "absolute path"),
        (_link("d/link", "../../etc"), "link member"),
        (_link("d/link", "sibling"), "link member"),  # even a link inside the tree: the archives have none
        (_link("d/hard", "d/ok.txt", tarfile.LNKTYPE), "link member"),
    ],
)
def test_unsafe_tar_member_refuses_whole_archive(tmp_path, member, reason):
    assert reason in unsafe_tar_member(member[0])
    tar_path = _tar(tmp_path / "a.tar", _file("d/ok.txt"), member)
    dest = tmp_path / "sub" / "out"
    with pytest.raises(PrepareError) as exc:
        safe_extract_tar(tar_path, dest, name="a.tar", readme=README)
    message = str(exc.value)
    assert f"member {member[0].name!r} has an unsafe path or type" in message and reason in message
    assert "nothing was extracted" in message and README in message
    assert not dest.exists() and not (tmp_path / "evil").exists() and not (tmp_path / "sub" / "evil").exists()


def test_device_tar_member_is_refused():
    info = tarfile.TarInfo("d/fifo")
    info.type = tarfile.FIFOTYPE
    assert unsafe_tar_member(info) == "device or fifo member"
    assert unsafe_tar_member(_file("d/ok.txt")[0]) is None


def test_truncated_tar(tmp_path):
    tar_path = _tar(tmp_path / "a.tar", _file("d/ok.txt", b"x" * 5000))
    tar_path.write_bytes(tar_path.read_bytes()[:700])
    with pytest.raises(PrepareError, match="could not extract .*probably truncated or not a.tar"):
        safe_extract_tar(tar_path, tmp_path / "out", name="a.tar", readme=README)


def _zip_with_symlink(path, name, target):
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("val/ok.txt", b"x")
        zf.writestr(info, target)
    return path


def test_zip_path_traversal_and_symlink_are_refused(tmp_path):
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("val/ok.txt", b"x")
        zf.writestr("other/../../evil.txt", b"x")  # outside keep_prefix, still refused
    dest = tmp_path / "out"
    unsafe = r"'other/\.\./\.\./evil\.txt' has an unsafe path or type \('\.\.' in path\)"
    with pytest.raises(PrepareError, match=unsafe):
        safe_extract_zip(bad, dest, name="bad.zip", readme=README, keep_prefix="val/")
    assert not dest.exists() and not (tmp_path / "evil.txt").exists()

    link = _zip_with_symlink(tmp_path / "link.zip", "val/link", "../../etc/passwd")
    with zipfile.ZipFile(link) as zf:
        assert unsafe_zip_member(zf.getinfo("val/link")) == "link or device member"
    with pytest.raises(PrepareError, match="'val/link' has an unsafe path or type"):
        safe_extract_zip(link, dest, name="link.zip", readme=README)
    assert not dest.exists()


def test_zip_extracts_only_the_prefix(tmp_path):
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("val/a.txt", b"a")
        zf.writestr("val/sub/b.txt", b"b")
        zf.writestr("train/c.txt", b"c")
        zf.writestr("__MACOSX/val/._a.txt", b"")
    dest = tmp_path / "out"
    assert safe_extract_zip(good, dest, name="good.zip", readme=README, keep_prefix="val/") == 2
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert files == ["val/a.txt", "val/sub/b.txt"]
    with pytest.raises(PrepareError, match="has no members under 'test/'; it is not good.zip"):
        safe_extract_zip(good, dest, name="good.zip", readme=README, keep_prefix="test/")


def test_not_a_zip(tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(PrepareError, match="could not extract .*probably truncated or not junk.zip"):
        safe_extract_zip(junk, tmp_path / "out", name="junk.zip", readme=README)


def test_evenly_spaced_and_read_ids(tmp_path):
    ids = [f"{i:03d}" for i in range(10)]
    assert evenly_spaced(ids, None) == ids and evenly_spaced(ids, 10) == ids and evenly_spaced(ids, 50) == ids
    assert evenly_spaced(ids, 1) == ["000"]
    assert evenly_spaced(ids, 2) == ["000", "009"]
    assert evenly_spaced(ids, 4) == ["000", "003", "006", "009"]
    assert evenly_spaced(ids, 0) == [] and evenly_spaced(ids, -3) == []
    assert evenly_spaced([], 3) == []
    split = tmp_path / "val.txt"
    split.write_text("a\n  b \n\n c\n")
    assert read_ids(split) == ["a", "b", "c"]
