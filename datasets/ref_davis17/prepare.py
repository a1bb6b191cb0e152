#!/usr/bin/env python
"""Extract and verify Ref-DAVIS17 (DAVIS-2017 480p + Khoreva et al.'s expressions) for car-bench.

Usage::

    # extract both downloads safely, then verify
    python datasets/ref_davis17/prepare.py --root <data_root>/ref_davis17 \\
        --davis-zip DAVIS-2017-Unsupervised-trainval-480p.zip --text-zip davis_text_annotations.zip
    # verify an extracted tree (--sample N decodes N evenly spaced annotations instead of all)
    python datasets/ref_davis17/prepare.py --root <data_root>/ref_davis17

``--root`` holds (or will hold) ``DAVIS/`` and ``davis_text_annotations/``, the folder
car.data.ref_davis17.RefDavis17 reads. Nothing is converted. Checks: ``ImageSets/2017/val.txt``
lists the 30 DAVIS-2017 val videos, 1,999 frames in all (a partial tree is refused unless
--allow-subset); every video has JPEG frames and as many ``Annotations_unsupervised`` PNGs with
the same names; the decoded annotations are single-channel and of their frame's size; the four
expression files parse (the loader's own rules: well-formed, non-empty, known video names) and
give every val video an expression. Neither download has a published checksum. Exit 0 (one
``OK:`` line) or 1 (one ``error:`` line). See datasets/ref_davis17/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: import car from this checkout

from car.data.archives import PrepareError, safe_extract_zip, zip_names  # noqa: E402
from car.data.prepare_checks import check_labels, require_dir, sorted_stems  # noqa: E402
from car.data.prepare_driver import Archive, Preparation, run  # noqa: E402
from car.data.ref_davis17 import ANNOTATIONS, RESOLUTION, TEXT_DIR, RefDavis17  # noqa: E402
from car.errors import CarError  # noqa: E402

README = "datasets/ref_davis17/README.md"
DAVIS_ZIP = "DAVIS-2017-Unsupervised-trainval-480p.zip"
TEXT_ZIP = "davis_text_annotations.zip"
VAL_VIDEOS = (  # DAVIS-2017 val (ImageSets/2017/val.txt), 30 videos
    "bike-packing", "blackswan", "bmx-trees", "breakdance", "camel", "car-roundabout", "car-shadow", "cows",
    "dance-twirl", "dog", "dogs-jump", "drift-chicane", "drift-straight", "goat", "gold-fish", "horsejump-high",
    "india", "judo", "kite-surf", "lab-coat", "libby", "loading", "mbike-trick", "motocross-jump",
    "paragliding-launch", "parkour", "pigs", "scooter-black", "shooting", "soapbox")
VAL_FRAMES = 1999  # frames of the 30 val videos (4,209 more in train)


def extract_text(path: Path, root: Path) -> tuple[Path, int]:
    """The expression zip into <root>/davis_text_annotations/, whether or not its files sit in that folder."""
    names = [n for n in zip_names(path, name=TEXT_ZIP, readme=README) if not n.startswith("__MACOSX")]
    inside = all(n.startswith(f"{TEXT_DIR}/") for n in names)
    dest = root if inside else root / TEXT_DIR
    return root / TEXT_DIR, safe_extract_zip(path, dest, name=TEXT_ZIP, readme=README)


def verify(root: Path, allow_subset: bool = False, sample: int | None = None) -> str:
    fix = f"extract {DAVIS_ZIP} and {TEXT_ZIP} into {root} (see {README})"
    davis = root / "DAVIS"
    listing = davis / "ImageSets" / "2017" / "val.txt"
    if not listing.is_file():
        raise PrepareError(f"Ref-DAVIS17 tree is incomplete: {listing} does not exist; {fix}.")
    videos = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    unknown = [v for v in videos if v not in VAL_VIDEOS]
    if unknown:
        raise PrepareError(f"{listing} lists {unknown[0]!r}, which is not a DAVIS-2017 val video; {fix}.")
    if len(set(videos)) != len(VAL_VIDEOS) and not allow_subset:
        raise PrepareError(f"Ref-DAVIS17 is incomplete: {listing} lists {len(set(videos))} of {len(VAL_VIDEOS)} "
                           f"val videos; {fix}, or pass --allow-subset to accept a deliberate subset.")
    frames = 0
    for video in videos:
        frame_dir, label_dir = davis / "JPEGImages" / RESOLUTION / video, davis / ANNOTATIONS / RESOLUTION / video
        require_dir(frame_dir, "Ref-DAVIS17", fix)
        require_dir(label_dir, "Ref-DAVIS17", fix)
        ids, labels = sorted_stems(frame_dir, ".jpg"), sorted_stems(label_dir, ".png")
        if not ids or ids != labels:
            raise PrepareError(f"Ref-DAVIS17 video {video} has {len(ids)} frames in {frame_dir} and {len(labels)} "
                               f"annotations in {label_dir}, not one annotation per frame; {fix}.")
        check_labels(ids, lambda i, d=frame_dir: d / f"{i}.jpg", lambda i, d=label_dir: d / f"{i}.png",
                     what="Ref-DAVIS17", fix=fix, modes=("P", "L"), allowed=lambda v: v <= 255,
                     allowed_text="0..255", sample=sample)
        frames += len(ids)
    if frames != VAL_FRAMES and not allow_subset:
        raise PrepareError(f"Ref-DAVIS17 is incomplete: its {len(videos)} val videos hold {frames} frames, not "
                           f"{VAL_FRAMES}; {fix}, or pass --allow-subset to accept a deliberate subset.")
    try:
        data = RefDavis17(root, split="val")
    except CarError as exc:
        raise PrepareError(str(exc).rstrip(".") + ".") from None
    expressions = sum(len(data.expressions[s].get(v, {})) for s in data.expression_sets for v in videos)
    subset = " (subset allowed)" if allow_subset else ""
    return (f"OK: Ref-DAVIS17 val at {root}: {len(videos)} videos, {frames} frames with annotations, "
            f"{len(data.expression_sets)} expression sets ({expressions} expressions of val videos){subset}; "
            f"use paths.data_root={root.parent}")


PREPARATION = Preparation(
    description="Extract (optionally) and verify Ref-DAVIS17 for car-bench.",
    readme=README,
    verify=verify,
    root_help="the ref_davis17 folder: holds (or will hold) DAVIS/ and davis_text_annotations/",
    archives=[Archive("--davis-zip", DAVIS_ZIP, f"path to {DAVIS_ZIP}; extracted into ROOT (its DAVIS/ folder)",
                      keep_prefix="DAVIS/"),
              Archive("--text-zip", TEXT_ZIP, f"path to {TEXT_ZIP}; extracted into ROOT/{TEXT_DIR}",
                      extract=extract_text)],
    subset_help=f"accept fewer than the {len(VAL_VIDEOS)} val videos",
    sample_help="decode only N evenly spaced annotations per video when verifying (default: all)",
)


def main(argv: list[str] | None = None) -> int:
    return run(PREPARATION, argv)


if __name__ == "__main__":
    sys.exit(main())
