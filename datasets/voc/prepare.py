#!/usr/bin/env python
"""Extract and verify Pascal VOC 2012 (segmentation) for the CaR benchmark harness.

Usage::

    # check the md5, extract safely, then verify
    python datasets/voc/prepare.py --tar /path/VOCtrainval_11-May-2012.tar --data-root <dir>
    # verify an existing tree only
    python datasets/voc/prepare.py --data-root <dir> --verify-only

``<dir>`` is the folder that contains (or will contain) ``VOCdevkit/``; it is what the harness
calls ``paths.data_root`` (or the ``CAR_DATA_ROOT`` environment variable).

Only the standard library, numpy and Pillow are used. ``main()`` returns an exit code:
0 on success (one-line summary on stdout), 1 on any problem (one message on stderr).
See datasets/voc/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tarfile
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

TAR_NAME = "VOCtrainval_11-May-2012.tar"
TAR_MD5 = "6cd6e144f989b92b3379bac3b3de84fd"
VOC_SUBDIR = Path("VOCdevkit") / "VOC2012"
SPLITS = ("train", "val", "trainval")
EXPECTED_COUNTS = {"train": 1464, "val": 1449, "trainval": 2913}
NUM_CLASSES = 21  # 0 = background, 1..20 = object classes
IGNORE_INDEX = 255  # void / object border
VALID_LABELS = frozenset(range(NUM_CLASSES)) | {IGNORE_INDEX}
README = "datasets/voc/README.md"
CHUNK = 1 << 20


class PrepareError(Exception):
    """A problem that stops preparation; its message is the single line shown to the user."""


# --------------------------------------------------------------------------------------------- tar


def md5_of(path: Path, chunk_size: int = CHUNK) -> str:
    """md5 hex digest of a file, streamed in chunks (the VOC tar is ~1.9 GB)."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def _unsafe_reason(member: tarfile.TarInfo) -> str | None:
    """Why a tar member must not be extracted (path traversal, links out of the tree, devices)."""
    name = member.name
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return "'..' in path"
    if member.isdev():
        return "device or fifo member"
    if member.issym() or member.islnk():
        target = member.linkname.replace("\\", "/")
        if target.startswith("/") or (len(target) > 1 and target[1] == ":"):
            return f"link to absolute path {member.linkname!r}"
        base = PurePosixPath(name).parent if member.issym() else PurePosixPath()
        depth = 0
        for part in (base / target).parts:
            if part == "..":
                depth -= 1
                if depth < 0:
                    return f"link escaping the target directory ({member.linkname!r})"
            elif part not in ("", "."):
                depth += 1
    return None


def safe_extract(tar_path: Path, dest: Path) -> int:
    """Extract ``tar_path`` under ``dest`` after checking every member; returns the member count.

    All members are checked before anything is written, so a tar with a single unsafe member
    (absolute path, '..', a link pointing outside, a device) leaves ``dest`` untouched.
    """
    try:
        with tarfile.open(tar_path, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                reason = _unsafe_reason(member)
                if reason is not None:
                    raise PrepareError(
                        f"refusing to extract {tar_path}: member {member.name!r} is unsafe ({reason}); "
                        f"nothing was extracted. Download {TAR_NAME} again from the official host (see {README})."
                    )
            dest.mkdir(parents=True, exist_ok=True)
            if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 / 3.12: stdlib-enforced safety as well
                tar.extractall(dest, members=members, filter="data")
            else:  # pragma: no cover - old Python; the checks above already rejected unsafe members
                tar.extractall(dest, members=members)
    except PrepareError:
        raise
    except (tarfile.TarError, OSError) as exc:
        raise PrepareError(
            f"could not extract {tar_path}: {exc}; the file is probably truncated or not {TAR_NAME} "
            f"(download it again, see {README})."
        ) from exc
    return len(members)


# ------------------------------------------------------------------------------------------ verify


def _read_ids(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _evenly_spaced(ids: list[str], n: int | None) -> list[str]:
    if n is None or n >= len(ids):
        return list(ids)
    if n <= 0:
        return []
    idx = np.linspace(0, len(ids) - 1, n).round().astype(int)
    return [ids[i] for i in sorted(set(idx.tolist()))]


def verify(data_root: Path, allow_subset: bool = False, sample: int | None = None) -> str:
    """Check the VOC 2012 tree under ``data_root``; return a one-line summary or raise PrepareError."""
    root = data_root / VOC_SUBDIR
    fix = f"re-extract {TAR_NAME} into {data_root} (see {README})"
    if not root.is_dir():
        hint = ""
        nested = sorted(data_root.glob(f"*/{VOC_SUBDIR.as_posix()}")) if data_root.is_dir() else []
        if nested:
            hint = f" (found {nested[0]}: pass --data-root {nested[0].parents[1]})"
        raise PrepareError(
            f"Pascal VOC 2012 not found: {root} does not exist{hint}; download {TAR_NAME} and run "
            f"'python datasets/voc/prepare.py --tar <path>/{TAR_NAME} --data-root {data_root}' (see {README})."
        )

    image_dir, label_dir, split_dir = root / "JPEGImages", root / "SegmentationClass", root / "ImageSets" / "Segmentation"
    missing = [p for p in (image_dir, label_dir) if not p.is_dir()]
    missing += [split_dir / f"{s}.txt" for s in SPLITS if not (split_dir / f"{s}.txt").is_file()]
    if missing:
        names = ", ".join(str(p.relative_to(root)) for p in missing)
        raise PrepareError(f"VOC2012 tree under {root} is incomplete: missing {names}; {fix}.")

    splits = {s: _read_ids(split_dir / f"{s}.txt") for s in SPLITS}
    for s in SPLITS:
        dupes = len(splits[s]) - len(set(splits[s]))
        if dupes:
            raise PrepareError(f"{split_dir / f'{s}.txt'} lists {dupes} duplicate id(s); {fix}.")
    val = splits["val"]
    if not val:
        raise PrepareError(f"{split_dir / 'val.txt'} is empty; {fix}.")
    if not allow_subset:
        for s in ("val", "train", "trainval"):
            got, want = len(splits[s]), EXPECTED_COUNTS[s]
            if got != want:
                raise PrepareError(
                    f"VOC2012 {s} is incomplete: {split_dir / f'{s}.txt'} lists {got} of {want} ids; {fix} "
                    f"(or pass --allow-subset to accept a deliberate subset)."
                )

    for folder, ext, what in ((image_dir, ".jpg", "images"), (label_dir, ".png", "labels")):
        absent = [f"{i}{ext}" for i in val if not (folder / f"{i}{ext}").is_file()]
        if absent:
            raise PrepareError(
                f"VOC2012 val is incomplete: {len(absent)} of {len(val)} {what} missing under {folder} "
                f"(first: {absent[0]}); {fix}."
            )

    checked = _evenly_spaced(val, sample)
    for image_id in checked:
        image_path, label_path = image_dir / f"{image_id}.jpg", label_dir / f"{image_id}.png"
        try:
            with Image.open(image_path) as im:
                image_size = im.size
        except Exception as exc:  # noqa: BLE001 - any decoder error means a broken file
            raise PrepareError(f"VOC2012 image {image_path} cannot be read ({exc}); {fix}.") from exc
        try:
            with Image.open(label_path) as lab:
                mode, label_size = lab.mode, lab.size
                values = np.unique(np.asarray(lab)) if mode in ("P", "L") else None
        except Exception as exc:  # noqa: BLE001
            raise PrepareError(f"VOC2012 label {label_path} cannot be read ({exc}); {fix}.") from exc
        if values is None:
            raise PrepareError(
                f"VOC2012 label {label_path} has mode {mode!r}, expected a palette ('P') or 'L' PNG of class "
                f"indices; {fix}."
            )
        bad = sorted(int(v) for v in values if int(v) not in VALID_LABELS)
        if bad:
            raise PrepareError(
                f"VOC2012 label {label_path} has values {bad[:10]} outside 0..{NUM_CLASSES - 1} and {IGNORE_INDEX}; "
                f"{fix}."
            )
        if image_size != label_size:
            raise PrepareError(
                f"VOC2012 label {label_path} is {label_size[0]}x{label_size[1]} but image {image_path} is "
                f"{image_size[0]}x{image_size[1]}; {fix}."
            )

    n_jpeg = sum(1 for e in os.scandir(image_dir) if e.name.endswith(".jpg"))
    subset = " (subset allowed)" if allow_subset else ""
    return (
        f"OK: Pascal VOC 2012 at {root}: val {len(val)} ids ({len(checked)} labels checked), "
        f"train {len(splits['train'])}, trainval {len(splits['trainval'])}, JPEGImages {n_jpeg} files{subset}; "
        f"use paths.data_root={data_root}"
    )


# -------------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Extract (optionally) and verify Pascal VOC 2012 segmentation for car-bench.",
    )
    parser.add_argument(
        "--data-root", type=Path, default=os.environ.get("CAR_DATA_ROOT"),
        help="folder that contains (or will contain) VOCdevkit/ (default: $CAR_DATA_ROOT)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--tar", type=Path, help=f"path to {TAR_NAME} to extract into --data-root")
    mode.add_argument("--verify-only", action="store_true", help="do not extract, only verify the tree")
    parser.add_argument("--skip-md5", action="store_true", help=f"do not check the tar's md5 ({TAR_MD5})")
    parser.add_argument("--allow-subset", action="store_true",
                        help="accept split lists shorter than the official 1,449 val / 1,464 train ids")
    parser.add_argument("--sample", type=int, default=None, metavar="N",
                        help="decode only N evenly spaced val labels (default: all of val)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.data_root is None:
        parser.error("--data-root is required (or set CAR_DATA_ROOT)")
    if args.sample is not None and args.sample < 1:
        parser.error("--sample must be a positive integer")
    data_root = Path(args.data_root).expanduser()
    try:
        if args.tar is not None:
            tar_path = Path(args.tar).expanduser()
            if not tar_path.is_file():
                raise PrepareError(f"tar not found: {tar_path}; download {TAR_NAME} (see {README}).")
            if not args.skip_md5:
                got = md5_of(tar_path)
                if got != TAR_MD5:
                    raise PrepareError(
                        f"md5 mismatch for {tar_path}: got {got}, expected {TAR_MD5} for {TAR_NAME}; the download "
                        f"is corrupt or a different file (download it again, or pass --skip-md5 if intended)."
                    )
            n = safe_extract(tar_path, data_root)
            print(f"extracted {n} members of {tar_path} into {data_root}", file=sys.stderr)
        summary = verify(data_root, allow_subset=args.allow_subset, sample=args.sample)
    except PrepareError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
