"""The loader shared by the benchmarks stored as an image folder next to a label folder.

ADE20K-150, ADE-847, Pascal Context-459, COCO-Stuff-171 and Cityscapes differ only in where their
files are, what their ids look like and how an on-disk label value becomes a harness label. A
subclass sets those as class attributes and builds one lookup table (`label_table`) from on-disk
value to harness label; everything else (listing, up-front file check, reading, size check, the
one-sentence errors) is here.

Harness labels of these benchmarks (none has a background class): ``0`` is a slot that no
ground-truth pixel holds, where a method's "nothing here" lands (CaR's CRF background channel;
a peer's pixels below its probability threshold); the K classes are ``1..K`` (CaR's own id + 1
convention for ADE, ADE-847 and Context-459); unlabelled pixels hold ``ignore_index``. The
configs score them with `bg_protocol: car` (CaR's `ignore_background`: row and column 0 dropped)
and report the peers' protocol (row 0 only) beside it: see README "How the metrics are computed".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from car.data.common import check_listed_files, check_same_size, read_label_array, read_rgb
from car.errors import CarError

INVALID = -1  # label_table entry of an on-disk value that must never occur


def read_label_values(path: Path, modes: tuple[str, ...]) -> np.ndarray:
    """The raw values of a single-channel label file as int64 [H, W] (one-sentence CarError if unreadable)."""
    return read_label_array(path, modes, "check the dataset path or re-run its prepare script",
                            "re-download or re-convert the dataset")


class FolderSegmentation(Dataset):
    """Samples {"image", "target", "image_id"} of an image folder and its label folder.

    Args:
        root: the dataset's folder (see the subclass).
        split: the split folder name (e.g. "validation", "val2017", "val").
        num_classes: harness classes including slot 0 (K + 1).
        limit: keep only the first ``limit`` sorted ids (None = all).
        on_missing: "fail" (an image without its label stops the run, one sentence) or "skip" (its
            sample raises CarError when read: a counted skip under on_bad_sample=skip).
        ignore_index: the harness label of unlabelled pixels (255; 65535 for the label spaces above 255).
    """

    name = ""  # the benchmark, for messages
    readme = ""  # datasets/<name>/README.md
    image_dir_pattern = "images/{split}"  # relative to root
    label_dir_pattern = "annotations/{split}"
    image_suffix = ".jpg"
    label_suffix = ".png"
    label_modes: tuple[str, ...] = ("L", "P")
    num_disk_values = 256  # size of the lookup table (256 for 8-bit labels, 65536 for 16-bit)
    fix_missing = "run {prepare} (see {readme})"  # how to supply a missing label
    prepare = ""

    def __init__(self, root: str | Path, split: str, num_classes: int, limit: int | None = None,
                 on_missing: str = "fail", ignore_index: int = 255):
        self.root = Path(root).expanduser()
        self.split = split
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise CarError(f"limit must be a positive integer or None, got {limit!r}: fix the dataset limit setting.")
        if ignore_index < num_classes:
            raise CarError(f"{self.name}: ignore_index {ignore_index} is one of the {num_classes} class ids; "
                           f"choose an ignore_index >= {num_classes} in the dataset config.")
        self.image_dir = self.root / self.image_dir_pattern.format(split=split)
        self.label_dir = self.root / self.label_dir_pattern.format(split=split)
        if not self.image_dir.is_dir():
            raise CarError(f"{self.name} images not found: {self.image_dir} does not exist; prepare the dataset as "
                           f"described in {self.readme}, or set paths.data_root to the folder that holds it.")
        if not self.label_dir.is_dir():
            raise CarError(f"{self.name} labels not found: {self.label_dir} does not exist; "
                           f"{self.fix_missing.format(prepare=self.prepare, readme=self.readme)}.")
        ids = self._list_ids()
        if not ids:
            raise CarError(f"{self.name} image folder {self.image_dir} holds no *{self.image_suffix} files: "
                           f"prepare the dataset as described in {self.readme}.")
        self.ids: list[str] = ids[:limit] if limit is not None else ids
        self.table = self.label_table()
        if self.table.shape != (self.num_disk_values,):
            raise RuntimeError(f"{type(self).__name__}.label_table must have {self.num_disk_values} entries")
        missing = [self._label_path(i) for i in self.ids if not self._label_path(i).is_file()]
        sentence = (f"{len(missing)} of {len(self.ids)} {self.name} label file(s) are missing, e.g. "
                    f"{missing[0] if missing else None}: "
                    f"{self.fix_missing.format(prepare=self.prepare, readme=self.readme)}.")
        check_listed_files(missing, len(missing), len(self.ids), on_missing, sentence)

    # ------------------------------------------------------------------ what subclasses change

    def label_table(self) -> np.ndarray:
        """int64 [num_disk_values]: harness label of each on-disk value, INVALID where none may occur."""
        raise NotImplementedError

    def _list_ids(self) -> list[str]:
        return sorted(p.name[: -len(self.image_suffix)] for p in self.image_dir.iterdir()
                      if p.name.endswith(self.image_suffix) and p.is_file())

    def _image_path(self, image_id: str) -> Path:
        return self.image_dir / f"{image_id}{self.image_suffix}"

    def _label_path(self, image_id: str) -> Path:
        return self.label_dir / f"{image_id}{self.label_suffix}"

    # ------------------------------------------------------------------ reading

    def convert(self, raw: np.ndarray, path: Path) -> np.ndarray:
        """On-disk values [H, W] -> harness labels int64 [H, W]; an impossible value is a CarError."""
        inside = (raw >= 0) & (raw < self.num_disk_values)
        target = np.full(raw.shape, INVALID, dtype=np.int64)
        target[inside] = self.table[raw[inside]]
        if (target == INVALID).any():
            bad = np.unique(raw[target == INVALID])
            shown = ", ".join(str(v) for v in bad[:10]) + (", ..." if bad.size > 10 else "")
            raise CarError(f"Label file {path} contains values {shown} that are not {self.name} label ids: it is not "
                           f"a {self.name} label, re-run {self.prepare} (see {self.readme}).")
        return target

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict:
        image_id = self.ids[index]
        image = read_rgb(self._image_path(image_id))  # uint8 [H,W,3]
        path = self._label_path(image_id)
        target = self.convert(read_label_values(path, self.label_modes), path)  # int64 [H,W]
        check_same_size(image, target, image_id)
        return {"image": image, "target": target, "image_id": image_id}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, num_samples={len(self)})"


def shifted_table(num_classes: int, disk_ignore: int, ignore_index: int, size: int) -> np.ndarray:
    """The table of labels stored as class index 0..K-1 with `disk_ignore` unlabelled: v -> v + 1."""
    table = np.full(size, INVALID, dtype=np.int64)
    table[: num_classes - 1] = np.arange(1, num_classes)
    table[disk_ignore] = ignore_index
    return table
