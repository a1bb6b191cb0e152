"""The command line every ``datasets/<name>/prepare.py`` shares: parse, extract, convert, verify, exit code.

A script describes its dataset in a `Preparation` (its archives, its convert and verify steps,
its own options) and ends with ``sys.exit(run(PREPARATION))``; this module does the rest:

* the parser: the root folder option, one option per archive (``--tar``, ``--zip``, ...), ``--skip-md5``
  (or ``--skip-sha1``) where an archive has a published digest, ``--verify-only``, ``--overwrite``
  where the script converts, ``--allow-subset`` and ``--sample N`` where its verify takes them;
* the steps, in order: check and safely extract each archive given (car.data.archives), convert
  (unless ``--verify-only``), verify;
* the exit code: 0 with the summary line(s) on stdout, 1 with one ``error:`` line on stderr for any
  `PrepareError`, 2 for bad usage (argparse). Progress notes go to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from car.data.archives import PrepareError, check_digest, safe_extract_tar, safe_extract_zip


def same_root(root: Path, args: argparse.Namespace) -> Path:
    return root


def attr(option: str) -> str:
    """The argparse attribute of an option: "--images-zip" -> "images_zip"."""
    return option.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class Archive:
    """A download the script extracts: `--option PATH` (``many``: one or more paths)."""

    option: str  # "--tar", "--zip", "--images-zip", ...
    name: str  # the official file name, for messages
    help: str
    digest: str | None = None  # the published digest (checked unless --skip-<algorithm>)
    algorithm: str = "md5"
    keep_prefix: str = ""  # zip: extract only the members under this folder
    destination: Callable[[Path, argparse.Namespace], Path] = same_root  # (root, args) -> where it goes
    extract: Callable[[Path, Path], tuple[Path, int]] | None = None  # (path, root) -> (where, count): own rule
    many: bool = False


@dataclass(frozen=True)
class Preparation:
    """What a prepare script knows about its dataset; `run` does the rest."""

    description: str
    readme: str  # the page error messages point at
    verify: Callable[..., str | Sequence[str]]  # (root, allow_subset=, sample=, **verify_args) -> summary line(s)
    root_option: str = "--root"
    root_help: str = "the dataset folder"
    root_env: str | None = None  # an environment variable that may give the root instead
    archives: Sequence[Archive] = ()
    convert: Callable[[Path, argparse.Namespace], str | None] | None = None  # (root, args) -> progress note
    overwrite_help: str | None = None  # None: the script has no --overwrite
    subset_help: str | None = None  # None: no --allow-subset
    sample_help: str = "decode only N evenly spaced labels when verifying (default: all)"  # "": no --sample
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
    verify_args: Callable[[argparse.Namespace], dict] | None = None  # verify's keywords from the script's options
    check_arguments: Callable[[argparse.Namespace], str | None] | None = None  # -> a usage error or None
    conflicts: Sequence[str] = field(default_factory=tuple)  # more options --verify-only excludes


def build_parser(prep: Preparation) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=prep.description)
    env = os.environ.get(prep.root_env) if prep.root_env else None
    parser.add_argument(prep.root_option, type=Path, default=env, required=prep.root_env is None,
                        help=prep.root_help + (f" (default: ${prep.root_env})" if prep.root_env else ""))
    for archive in prep.archives:
        parser.add_argument(archive.option, type=Path, nargs="+" if archive.many else None,
                            default=[] if archive.many else None, help=archive.help)
    for algorithm in dict.fromkeys(a.algorithm for a in prep.archives if a.digest):
        parser.add_argument(f"--skip-{algorithm}", action="store_true",
                            help=f"do not check the {algorithm} of the downloads")
    parser.add_argument("--verify-only", action="store_true", help="do not extract or convert, only verify")
    if prep.overwrite_help:
        parser.add_argument("--overwrite", action="store_true", help=prep.overwrite_help)
    if prep.subset_help:
        parser.add_argument("--allow-subset", action="store_true", help=prep.subset_help)
    if prep.sample_help:
        parser.add_argument("--sample", type=int, default=None, metavar="N", help=prep.sample_help)
    if prep.add_arguments is not None:
        prep.add_arguments(parser)
    return parser


def usage_error(prep: Preparation, args: argparse.Namespace) -> str | None:
    """The first problem with the command line, or None."""
    if getattr(args, attr(prep.root_option)) is None:
        return f"{prep.root_option} is required (or set {prep.root_env})"
    if getattr(args, "sample", None) is not None and args.sample < 1:
        return "--sample must be a positive integer"
    if args.verify_only:
        options = [a.option for a in prep.archives] + (["--overwrite"] if prep.overwrite_help else [])
        given = [o for o in [*options, *prep.conflicts] if getattr(args, attr(o))]
        if given:
            return f"--verify-only cannot be combined with {', '.join(given)}"
    return prep.check_arguments(args) if prep.check_arguments is not None else None


def extract(prep: Preparation, archive: Archive, path: Path, root: Path, args: argparse.Namespace) -> None:
    """Check `path` (exists, digest) and extract it where `archive` says; one progress line on stderr."""
    if archive.extract is not None:
        dest, n = archive.extract(path, root)
    else:
        dest = archive.destination(root, args)
        kind = "tar" if not archive.name.endswith(".zip") else "zip"
        if not path.is_file():
            raise PrepareError(f"{kind} not found: {path}; download {archive.name} (see {prep.readme}).")
        if archive.digest and not getattr(args, f"skip_{archive.algorithm}"):
            check_digest(path, archive.digest, archive.name, archive.algorithm, f"--skip-{archive.algorithm}")
        if kind == "tar":
            n = safe_extract_tar(path, dest, name=archive.name, readme=prep.readme)
        else:
            n = safe_extract_zip(path, dest, name=archive.name, readme=prep.readme, keep_prefix=archive.keep_prefix)
    unit = "members" if not archive.name.endswith(".zip") else "files"
    print(f"extracted {n} {unit} of {path} into {dest}", file=sys.stderr)


def prepare(prep: Preparation, root: Path, args: argparse.Namespace) -> list[str]:
    """Extract, convert, verify; returns the summary lines or raises PrepareError."""
    for archive in prep.archives:
        given = getattr(args, attr(archive.option))
        for path in (given if archive.many else [given] if given is not None else []):
            extract(prep, archive, Path(path).expanduser(), root, args)
    if prep.convert is not None and not args.verify_only:
        note = prep.convert(root, args)
        if note:
            print(note, file=sys.stderr)
    options = {"allow_subset": args.allow_subset} if prep.subset_help else {}
    options.update({"sample": args.sample} if prep.sample_help else {})
    options.update(prep.verify_args(args) if prep.verify_args is not None else {})
    summary = prep.verify(root, **options)
    return [summary] if isinstance(summary, str) else list(summary)


def run(prep: Preparation, argv: list[str] | None = None) -> int:
    """The script's main(): 0 (summary on stdout), 1 (one error line on stderr), 2 (bad usage, argparse)."""
    parser = build_parser(prep)
    args = parser.parse_args(argv)
    problem = usage_error(prep, args)
    if problem:
        parser.error(problem)
    root = Path(getattr(args, attr(prep.root_option))).expanduser()
    try:
        lines = prepare(prep, root, args)
    except PrepareError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for line in lines:
        print(line)
    return 0
