#!/usr/bin/env python
"""Extract and verify RefCOCO / RefCOCO+ / RefCOCOg (refer-toolkit data_root) for the CaR harness.

Usage::

    # extract the refer zips and COCO train2014 safely, then verify
    python datasets/refcoco/prepare.py --data-root <dir> \\
        --zip refcoco.zip refcoco+.zip refcocog.zip train2014.zip
    # verify an existing tree only
    python datasets/refcoco/prepare.py --data-root <dir>
    # a partial or sample tree (e.g. ../shared/data/refcoco): skip the official split sizes
    python datasets/refcoco/prepare.py --data-root <dir> --skip-counts

``<dir>`` is the refer ``data_root``: it holds ``refcoco/``, ``refcoco+/``, ``refcocog/`` and
``images/mscoco/images/train2014/``. Verification checks, for every dataset folder present (or
those named with ``--dataset``): instances.json parses; each refs file loads with the restricted
unpickler (``car.data.safe_pickle``: no code can run); every ref resolves to an annotation and an
image of instances.json; every referenced image file exists and is non-empty; and (unless
``--skip-counts``) the number of referred objects per split — and, where a source states them,
the number of sentences — equals the official figures below.

``main()`` returns an exit code: 0 on success (one-line summary per dataset on stdout), 1 on any
problem (one message on stderr), 2 on bad command-line usage. See datasets/refcoco/README.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path, PurePosixPath

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: import car from this checkout

from car.data.archives import PrepareError, safe_extract_zip, zip_names  # noqa: E402
from car.data.prepare_driver import Archive, Preparation, run  # noqa: E402
from car.data.safe_pickle import safe_load  # noqa: E402
from car.errors import CarError  # noqa: E402

README = "datasets/refcoco/README.md"
IMAGE_SUBDIR = Path("images") / "mscoco" / "images" / "train2014"
REFS_FILES = {
    "refcoco": ("unc",),
    "refcoco+": ("unc",),
    "refcocog": ("umd", "google"),
}
# Referred objects (refs) per split: tensorflow/datasets vision_language/refcoco/refcoco.py
# (stats table built from the refer-toolkit files).
EXPECTED_OBJECTS = {
    ("refcoco", "unc"): {"train": 42404, "val": 3811, "testA": 1975, "testB": 1810},
    ("refcoco+", "unc"): {"train": 42278, "val": 3805, "testA": 1975, "testB": 1798},
    ("refcocog", "umd"): {"train": 42226, "val": 2573, "test": 5023},
    ("refcocog", "google"): {"train": 44822, "val": 5000},
}
# Sentences per split, only where a source states them (FlagEval RefCOCO page: train 120624,
# validation 10834, testA 5657, testB 5095). Other combinations are not checked.
EXPECTED_SENTENCES = {
    ("refcoco", "unc"): {"train": 120624, "val": 10834, "testA": 5657, "testB": 5095},
}


# --------------------------------------------------------------------------------------------- zip


def extract_zip(zip_path: Path, data_root: Path) -> tuple[Path, int]:
    """Extract a refer zip (refcoco*.zip -> data_root) or train2014.zip (-> data_root/images/mscoco/images).

    The destination follows from the top-level folders; every member is checked first (see
    car.data.archives). Returns (destination, number of files extracted).
    """
    names = zip_names(zip_path, name=zip_path.name, readme=README)
    tops = {PurePosixPath(n.replace("\\", "/")).parts[0] for n in names if n.strip("/")}
    if tops <= {"train2014"}:
        dest = data_root / IMAGE_SUBDIR.parent
    elif tops and tops <= {"refcoco", "refcoco+", "refcocog", "refclef", "__MACOSX"}:
        dest = data_root
    else:
        raise PrepareError(
            f"{zip_path} holds top-level entries {sorted(tops)[:5]}, not a refer-toolkit zip (refcoco/, "
            f"refcoco+/, refcocog/) nor COCO train2014.zip (train2014/): see {README}."
        )
    return dest, safe_extract_zip(zip_path, dest, name=zip_path.name, readme=README)


# ------------------------------------------------------------------------------------------ verify


def _load_instances(path: Path) -> tuple[dict, set]:
    if not path.is_file():
        raise PrepareError(f"{path} does not exist: extract the refer zip into the data root (see {README}).")
    try:
        data = json.loads(path.read_bytes())
        images = {int(im["id"]): str(im["file_name"]) for im in data["images"]}
        ann_ids = {int(a["id"]) for a in data["annotations"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PrepareError(f"{path} is not a valid refer instances.json ({exc}): re-extract it "
                           f"(see {README}).") from exc
    return images, ann_ids


def verify_dataset(data_root: Path, dataset: str, skip_counts: bool = False) -> str:
    """Verify one dataset folder; return a one-line summary or raise PrepareError."""
    ds_dir = data_root / dataset
    images, ann_ids = _load_instances(ds_dir / "instances.json")
    image_dir = data_root / IMAGE_SUBDIR
    present = [sb for sb in REFS_FILES[dataset] if (ds_dir / f"refs({sb}).p").is_file()]
    if not present:
        wanted = " or ".join(f"refs({sb}).p" for sb in REFS_FILES[dataset])
        raise PrepareError(f"{ds_dir} has no {wanted}: extract {dataset}.zip into the data root (see {README}).")
    parts, checked_images = [], set()
    for split_by in present:
        refs_path = ds_dir / f"refs({split_by}).p"
        try:
            refs = safe_load(refs_path)
        except CarError as exc:
            raise PrepareError(str(exc)) from exc
        if not isinstance(refs, list):
            raise PrepareError(f"{refs_path} holds a {type(refs).__name__}, not a list of refs: re-extract it.")
        objects: dict[str, int] = {}
        sentences: dict[str, int] = {}
        for ref in refs:
            try:
                split, ref_id = str(ref["split"]), int(ref["ref_id"])
                ann_id, image_id = int(ref["ann_id"]), int(ref["image_id"])
                n_sent = len(ref["sentences"])
                for s in ref["sentences"]:
                    s["raw"], s["sent_id"]  # noqa: B018 - presence check
            except (KeyError, TypeError, ValueError) as exc:
                raise PrepareError(f"{refs_path} has a malformed ref ({type(exc).__name__}: {exc}): "
                                   f"re-extract it.") from exc
            if ann_id not in ann_ids:
                raise PrepareError(f"ref {ref_id} in {refs_path} points to annotation {ann_id}, "
                                   f"absent from instances.json.")
            if image_id not in images:
                raise PrepareError(f"ref {ref_id} in {refs_path} points to image {image_id}, "
                                   f"absent from instances.json.")
            objects[split] = objects.get(split, 0) + 1
            sentences[split] = sentences.get(split, 0) + n_sent
            if image_id not in checked_images:
                image_path = image_dir / images[image_id]
                if not image_path.is_file() or image_path.stat().st_size == 0:
                    raise PrepareError(
                        f"image {image_path} (ref {ref_id} of {dataset}) is missing or empty: extract COCO "
                        f"train2014.zip into {image_dir.parent} (see {README})."
                    )
                checked_images.add(image_id)
        if not skip_counts:
            for kind, expected_all, got in (
                ("referred objects", EXPECTED_OBJECTS, objects),
                ("sentences", EXPECTED_SENTENCES, sentences),
            ):
                for split, n in expected_all.get((dataset, split_by), {}).items():
                    if got.get(split, 0) != n:
                        raise PrepareError(
                            f"{refs_path} has {got.get(split, 0)} {kind} in split {split}, the official file has {n}: "
                            f"re-download {dataset}.zip (or pass --skip-counts for a partial tree)."
                        )
        counts = ", ".join(f"{s} {objects[s]}/{sentences[s]}" for s in sorted(objects))
        parts.append(f"refs({split_by}).p: {len(refs)} objects ({counts} objects/sentences)")
    return f"{dataset} ok: " + "; ".join(parts) + f"; {len(checked_images)} images present"


def verify(data_root: Path, datasets: list[str] | None = None, skip_counts: bool = False) -> list[str]:
    if not data_root.is_dir():
        raise PrepareError(f"data root {data_root} does not exist: create it and extract the zips (see {README}).")
    if datasets is None:
        datasets = [d for d in REFS_FILES if (data_root / d).is_dir()]
        if not datasets:
            raise PrepareError(
                f"{data_root} holds none of {', '.join(REFS_FILES)}: extract refcoco.zip, refcoco+.zip and/or "
                f"refcocog.zip there (see {README})."
            )
    return [verify_dataset(data_root, d, skip_counts) for d in datasets]


def add_arguments(parser) -> None:
    parser.add_argument("--dataset", nargs="+", choices=sorted(REFS_FILES), help="verify only these datasets")
    parser.add_argument("--skip-counts", action="store_true", help="do not compare split sizes with the official ones")


PREPARATION = Preparation(
    description="Extract and verify RefCOCO/RefCOCO+/RefCOCOg (refer data_root).",
    readme=README, verify=verify, root_option="--data-root", root_help="refer data_root (see README)",
    archives=[Archive("--zip", "refcoco*.zip or train2014.zip", "refcoco*.zip and/or train2014.zip to extract",
                      extract=extract_zip, many=True)],
    sample_help="", add_arguments=add_arguments,
    verify_args=lambda args: {"datasets": args.dataset, "skip_counts": args.skip_counts},
)


def main(argv: list[str] | None = None) -> int:
    return run(PREPARATION, argv)


if __name__ == "__main__":
    sys.exit(main())
