#!/usr/bin/env python
"""Convert and verify Pascal Context-459 (all Pascal-Context classes) for car-bench, detectron2 layout.

Usage::

    # extract trainval.tar.gz into VOC2010, convert the 5,105 val images, verify
    python datasets/context459/prepare.py --root <dir>/pascal_ctx_d2 --voc2010 <dir>/VOCdevkit/VOC2010 \
        --tar /path/trainval.tar.gz
    # convert from an extracted VOC2010/trainval/, then verify
    python datasets/context459/prepare.py --root <dir>/pascal_ctx_d2 --voc2010 <dir>/VOCdevkit/VOC2010
    # verify only
    python datasets/context459/prepare.py --root <dir>/pascal_ctx_d2 --verify-only [--sample N]

``--root`` is the loader's root (car.data.context459.PascalContext459). The split is the Pascal
Context val list written by datasets/context/prepare.py (``VOC2010/ImageSets/SegmentationContext/
val.txt``, 5,105 ids). Conversion (FC-CLIP's / ODISE's ``prepare_pascal_ctx_full_sem_seg.py``, the
one CaR's data preparation follows): ``LabelMap`` of ``trainval/<id>.mat`` (uint16, 0 = unlabelled,
1..459 = the classes of Pascal-Context's labels.txt) minus 1, with unlabelled written as 65535, as
``annotations_ctx459/validation/<id>.tif``; the JPEG is copied to ``images/validation/<id>.jpg``.
Reading .mat files needs scipy. ``main()`` returns 0 (one ``OK:`` line) or 1 (one ``error:`` line).
See datasets/context459/README.md.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: import car from this checkout

from car.data.archives import PrepareError, read_ids  # noqa: E402
from car.data.prepare_checks import output_pairs, tif_folders, verify_folders  # noqa: E402
from car.data.prepare_driver import Archive, Preparation, run  # noqa: E402

README = "datasets/context459/README.md"
TAR_NAME = "trainval.tar.gz"
SPLIT = "validation"
EXPECTED_IMAGES = 5105
NUM_CLASSES = 459
IGNORE = 65535


def label_from_mat(label_map: np.ndarray) -> np.ndarray:
    """Pascal-Context LabelMap (0 = unlabelled, 1..459) -> uint16 label (0..458, 65535 unlabelled)."""
    label_map = np.asarray(label_map)
    if label_map.ndim != 2:
        raise ValueError(f"LabelMap has shape {label_map.shape}, expected 2-D")
    bad = np.unique(label_map[(label_map < 0) | (label_map > NUM_CLASSES)])
    if bad.size:
        raise ValueError(f"LabelMap has values {bad[:10].tolist()} outside 0..{NUM_CLASSES}")
    out = label_map.astype(np.int64) - 1
    out[out < 0] = IGNORE
    return out.astype(np.uint16)


def read_label_map(mat_path: Path) -> np.ndarray:
    try:
        from scipy.io import loadmat
    except ImportError as exc:
        raise PrepareError(f"reading {mat_path} needs scipy ({exc}): pip install scipy (see {README}).") from None
    try:
        return loadmat(str(mat_path))["LabelMap"]
    except Exception as exc:  # noqa: BLE001 - a broken or foreign .mat
        raise PrepareError(f"{mat_path} has no readable LabelMap ({exc}); re-extract {TAR_NAME} "
                           f"(see {README}).") from exc


def convert(root: Path, voc2010: Path, overwrite: bool = False, allow_subset: bool = False) -> int:
    """Write images/validation and annotations_ctx459/validation for every val id; returns how many."""
    split_file = voc2010 / "ImageSets" / "SegmentationContext" / "val.txt"
    if not split_file.is_file():
        raise PrepareError(f"{split_file} does not exist; prepare Pascal Context first with "
                           f"datasets/context/prepare.py (see {README}).")
    ids = read_ids(split_file)
    if len(ids) != EXPECTED_IMAGES and not allow_subset:
        raise PrepareError(f"{split_file} lists {len(ids)} of {EXPECTED_IMAGES} val ids; re-run datasets/context/"
                           f"prepare.py (see {README}), or pass --allow-subset to accept a deliberate subset.")
    mat_dir = voc2010 / "trainval"
    missing = [i for i in ids
               if not (mat_dir / f"{i}.mat").is_file() or not (voc2010 / "JPEGImages" / f"{i}.jpg").is_file()]
    if missing:
        raise PrepareError(f"{len(missing)} of {len(ids)} val ids have no {mat_dir}/<id>.mat or JPEG (first: "
                           f"{missing[0]}); extract {TAR_NAME} into {voc2010} (--tar) (see {README}).")
    todo = output_pairs(root / "images" / SPLIT, root / "annotations_ctx459" / SPLIT, ids, overwrite)
    for image_id, dst_image, dst_label in todo:
        mat_path = mat_dir / f"{image_id}.mat"
        try:
            label = label_from_mat(read_label_map(mat_path))
        except ValueError as exc:
            raise PrepareError(f"{mat_path}: {exc}; it is not a Pascal-Context annotation (see {README}).") from exc
        tmp = dst_label.with_name(dst_label.name + ".tmp")
        Image.fromarray(label).save(tmp, format="TIFF")
        os.replace(tmp, dst_label)
        shutil.copyfile(voc2010 / "JPEGImages" / f"{image_id}.jpg", dst_image)
    return len(todo)


def verify(root: Path, allow_subset: bool = False, sample: int | None = None) -> str:
    fix = f"run 'python datasets/context459/prepare.py --root {root} --voc2010 <VOC2010>' (see {README})"
    tree = tif_folders("Pascal Context-459", SPLIT, root / "images" / SPLIT, root / "annotations_ctx459" / SPLIT,
                       EXPECTED_IMAGES, NUM_CLASSES, IGNORE)
    return "OK: " + verify_folders(tree, root, fix, allow_subset, sample)[1]


def voc2010_folder(root: Path, args) -> Path:
    return Path(args.voc2010).expanduser()


def convert_step(root: Path, args) -> str:
    n = convert(root, voc2010_folder(root, args), overwrite=args.overwrite, allow_subset=args.allow_subset)
    return f"converted {n} val image(s)"


def add_arguments(parser) -> None:
    parser.add_argument("--voc2010", type=Path, help="the VOCdevkit/VOC2010 folder (JPEGImages, the Context val "
                                                     "split, trainval/*.mat)")


def check_arguments(args) -> str | None:
    return "converting needs --voc2010 (or pass --verify-only)" if not args.verify_only and not args.voc2010 else None


PREPARATION = Preparation(
    description="Convert (optionally) and verify Pascal Context-459 for car-bench.",
    readme=README, verify=verify, root_help="the pascal_ctx_d2 folder (written here)",
    archives=[Archive("--tar", TAR_NAME, f"path to {TAR_NAME}, extracted into VOC2010 first",
                      destination=voc2010_folder)],
    convert=convert_step, overwrite_help="re-convert ids that already have outputs",
    subset_help=f"accept fewer than {EXPECTED_IMAGES} images",
    add_arguments=add_arguments, check_arguments=check_arguments, conflicts=("--voc2010",),
)


def main(argv: list[str] | None = None) -> int:
    return run(PREPARATION, argv)


if __name__ == "__main__":
    sys.exit(main())
