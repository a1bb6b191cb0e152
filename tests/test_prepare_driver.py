"""car/data/prepare_driver.py: the command line every datasets/<name>/prepare.py runs through.

A made-up dataset (one zip with a published md5, a convert step, a verify step) exercises what the
scripts share: the options built from the description, --verify-only, the digest check, the order
extract -> convert -> verify, and the exit codes 0 / 1 / 2 with one line each.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from car.data.archives import PrepareError, digest_of
from car.data.prepare_driver import Archive, Preparation, build_parser, run


def make_zip(path: Path, names=("toy/a.txt", "toy/b.txt", "other/c.txt")) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name in names:
            zf.writestr(name, name)
    return path


def toy(digest: str | None, steps: list) -> Preparation:
    def convert(root: Path, args) -> str:
        steps.append(("convert", args.overwrite))
        (root / "toy" / "converted").write_text("yes")
        return "converted 1 file"

    def verify(root: Path, allow_subset: bool = False, sample: int | None = None) -> str:
        steps.append(("verify", allow_subset, sample))
        if not (root / "toy" / "converted").is_file():
            raise PrepareError(f"toy is not converted under {root}; run the script without --verify-only.")
        return f"OK: toy at {root}"

    return Preparation(description="toy", readme="datasets/toy/README.md", verify=verify, convert=convert,
                       archives=[Archive("--zip", "toy.zip", "the toy zip", digest=digest, keep_prefix="toy/")],
                       overwrite_help="convert again", subset_help="accept a subset")


def test_extract_convert_verify_in_order(tmp_path, capsys):
    archive = make_zip(tmp_path / "toy.zip")
    steps = []
    code = run(toy(digest_of(archive), steps), ["--root", str(tmp_path / "root"), "--zip", str(archive),
                                              "--allow-subset", "--sample", "3", "--overwrite"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out == f"OK: toy at {tmp_path / 'root'}\n"
    assert err.splitlines() == [f"extracted 2 files of {archive} into {tmp_path / 'root'}", "converted 1 file"]
    assert steps == [("convert", True), ("verify", True, 3)]
    assert sorted(p.name for p in (tmp_path / "root" / "toy").iterdir()) == ["a.txt", "b.txt", "converted"]
    assert not (tmp_path / "root" / "other").exists()  # keep_prefix


def test_verify_only_skips_extract_and_convert(tmp_path, capsys):
    steps = []
    assert run(toy(None, steps), ["--root", str(tmp_path), "--verify-only"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: toy is not converted") and err.count("\n") == 1
    assert steps == [("verify", False, None)]


def test_digest_mismatch_stops_before_extracting(tmp_path, capsys):
    archive = make_zip(tmp_path / "toy.zip")
    steps = []
    assert run(toy("0" * 32, steps), ["--root", str(tmp_path / "root"), "--zip", str(archive)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: md5 mismatch") and "--skip-md5" in err and err.count("\n") == 1
    assert steps == [] and not (tmp_path / "root").exists()
    assert run(toy("0" * 32, steps), ["--root", str(tmp_path / "root"), "--zip", str(archive), "--skip-md5"]) == 0


def test_missing_archive_is_one_line(tmp_path, capsys):
    assert run(toy(None, []), ["--root", str(tmp_path), "--zip", str(tmp_path / "absent.zip")]) == 1
    err = capsys.readouterr().err
    assert err == f"error: zip not found: {tmp_path / 'absent.zip'}; download toy.zip (see datasets/toy/README.md).\n"


@pytest.mark.parametrize("argv, message", [
    ([], "the following arguments are required: --root"),
    (["--root", "r", "--sample", "0"], "--sample must be a positive integer"),
    (["--root", "r", "--verify-only", "--zip", "t.zip", "--overwrite"],
     "--verify-only cannot be combined with --zip, --overwrite"),
])
def test_bad_usage_exits_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        run(toy(None, []), argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_options_follow_the_description():
    """Only what the dataset has: no --overwrite without a convert step, --skip-sha1 for a sha1 digest,
    the root from an environment variable, archives given several times."""
    prep = Preparation(description="d", readme="r", verify=lambda root: "OK", root_option="--data-root",
                       root_env="TOY_ROOT", sample_help="",
                       archives=[Archive("--zip", "z.zip", "h", digest="ab", algorithm="sha1", many=True)])
    options = {a.option_strings[0] for a in build_parser(prep)._actions}
    assert options == {"-h", "--data-root", "--zip", "--skip-sha1", "--verify-only"}
    args = build_parser(prep).parse_args(["--data-root", "x", "--zip", "a.zip", "b.zip"])
    assert args.zip == [Path("a.zip"), Path("b.zip")]


def test_root_from_the_environment(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TOY_ROOT", str(tmp_path))
    prep = Preparation(description="d", readme="r", verify=lambda root: f"OK: {root}", root_option="--data-root",
                       root_env="TOY_ROOT", sample_help="")
    assert run(prep, []) == 0 and capsys.readouterr().out == f"OK: {tmp_path}\n"
    monkeypatch.delenv("TOY_ROOT")
    with pytest.raises(SystemExit) as exc:
        run(prep, [])
    assert exc.value.code == 2 and "--data-root is required (or set TOY_ROOT)" in capsys.readouterr().err
