"""Pascal Context: loader (car.data.context) and conversion script (datasets/context/prepare.py).

There is no Context sample in shared data: the mapping is tested on hand-made 459-class masks, the
conversion on a fake Detail API object, and the loader on a small tree built in tmp_path from
synthetic JPEGs (VOC's 500 x 375) plus synthetic label PNGs, so nothing here needs the shared data.
"""

from __future__ import annotations

import sys
import types
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from car.data.context import PascalContext
from car.errors import CarError
from tests.conftest import SHARED_DATA, load_script, run_script

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "datasets" / "context" / "prepare.py"
CONTEXT_NAMES = SHARED_DATA / "class_names" / "car" / "context.txt"
IMAGE_SIZE = (500, 375)  # (W, H) of a typical VOC JPEG

# mmsegmentation's _mapping before np.sort (tools/dataset_converters/pascal_context.py)
MMSEG_UNSORTED = [
    0, 2, 259, 260, 415, 324, 9, 258, 144, 18, 19, 22, 23, 397, 25, 284, 158, 159, 416, 33, 162, 420, 454, 295,
    296, 427, 44, 45, 46, 308, 59, 440, 445, 31, 232, 65, 354, 424, 68, 326, 72, 458, 34, 207, 80, 355, 85, 347,
    220, 349, 360, 98, 187, 104, 105, 366, 189, 368, 113, 115,
]


prepare = load_script(SCRIPT, "car_context_prepare")


run_main = partial(run_script, prepare)  # (argv, capsys) -> (exit code, stdout, stderr)


# ---------------------------------------------------------------------------------------- mapping


def test_table_is_mmseg_mapping_sorted():
    assert list(prepare.CONTEXT60_DETAIL_IDS) == sorted(MMSEG_UNSORTED)
    assert len(set(MMSEG_UNSORTED)) == 60
    if CONTEXT_NAMES.is_file():
        assert len([n for n in CONTEXT_NAMES.read_text().splitlines() if n.strip()]) == 59


def test_mapping_on_hand_made_459_class_mask():
    ids = np.array(prepare.CONTEXT60_DETAIL_IDS)
    rng = np.random.default_rng(0)
    positions = rng.integers(0, 60, size=(37, 71))
    mask = ids[positions].astype(np.float64)  # the Detail API returns a float64 mask
    mask[0, :60] = ids  # every kept id at least once
    positions[0, :60] = np.arange(60)
    out = prepare.detail_to_context60(mask)
    assert out.dtype == np.uint8 and out.shape == mask.shape
    assert np.array_equal(out, positions)
    # a few named points: 0 -> 0 (unlabelled), 2 -> 1 (airplane), 458 -> 59 (wood), 284 -> 37 (person)
    assert prepare.detail_to_context60(np.array([[0, 2, 458, 284]])).tolist() == [[0, 1, 59, 37]]
    names = CONTEXT_NAMES.read_text().splitlines() if CONTEXT_NAMES.is_file() else None
    if names:
        assert names[1 - 1] == "airplane" and names[59 - 1] == "wood" and names[37 - 1] == "person"


def test_ids_outside_the_60_are_refused_or_sent_to_background():
    mask = np.array([[1, 2, 3], [459, 458, 0]], dtype=np.int64)  # 1, 3, 459 are not kept
    with pytest.raises(ValueError, match=r"class ids \[1, 3, 459\]"):
        prepare.detail_to_context60(mask)
    assert prepare.detail_to_context60(mask, unknown_to_background=True).tolist() == [[0, 1, 0], [0, 59, 0]]
    with pytest.raises(ValueError, match="non-integer"):
        prepare.detail_to_context60(np.array([[2.5]]))


# ------------------------------------------------------------------------------------- conversion


class FakeDetail:
    """The two Detail API calls the converter uses, over hand-made masks."""

    def __init__(self, masks: dict[str, np.ndarray]):
        self.masks = masks

    def getImgs(self):  # noqa: N802 - Detail API name
        return [{"file_name": f"{stem}.jpg", "image_id": k} for k, stem in enumerate(self.masks)]

    def getMask(self, img):  # noqa: N802
        return self.masks[Path(img["file_name"]).stem].astype(np.float64)


def _voc_size():
    return IMAGE_SIZE


def _write_jpeg(path: Path, seed: int = 0) -> None:
    w, h = IMAGE_SIZE
    pixels = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90)


def _masks(stems, w, h):
    out = {}
    for k, stem in enumerate(stems):
        m = np.zeros((h, w), dtype=np.int64)
        m[: h // 2] = 360  # sky -> 47
        m[h // 2:, : w // 2] = 284 if k % 2 else 65  # person -> 37 / cat -> 15
        out[stem] = m
    return out


def test_convert_split_writes_L_pngs_and_sorted_ids(tmp_path):
    detail = FakeDetail(_masks(["2008_000009", "2008_000002"], 8, 6))
    stems = prepare.convert_split(detail, tmp_path / "out")
    assert stems == ["2008_000002", "2008_000009"]
    with Image.open(tmp_path / "out" / "2008_000009.png") as im:
        assert im.mode == "L"
        label = np.array(im)
    assert set(np.unique(label).tolist()) == {0, 15, 47}
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_convert_split_error_is_one_sentence(tmp_path):
    detail = FakeDetail({"2008_000002": np.array([[7]])})
    with pytest.raises(prepare.PrepareError, match=r"image 2008_000002: class ids \[7\].*--unknown-to-background"):
        prepare.convert_split(detail, tmp_path)


@pytest.fixture
def voc2010(tmp_path):
    """VOCdevkit/VOC2010 with 3 synthetic JPEGs, no Context labels yet."""
    root = tmp_path / "VOCdevkit" / "VOC2010"
    (root / "JPEGImages").mkdir(parents=True)
    for seed, stem in enumerate(("2008_000002", "2008_000003", "2008_000007")):
        _write_jpeg(root / "JPEGImages" / f"{stem}.jpg", seed)
    return root


def test_main_converts_with_detail_api_then_verifies(voc2010, tmp_path, capsys, monkeypatch):
    w, h = _voc_size()
    phases = {"train": ["2008_000003"], "val": ["2008_000007", "2008_000002"]}

    def fake_detail(json_path, img_dir, phase):
        assert Path(img_dir) == voc2010 / "JPEGImages"
        return FakeDetail(_masks(phases[phase], w, h))

    monkeypatch.setitem(sys.modules, "detail", types.SimpleNamespace(Detail=type("Detail", (), {
        "__new__": lambda cls, *a: fake_detail(*a), "getMask": None})))
    json_path = tmp_path / "trainval_merged.json"
    json_path.write_text("{}")
    code, out, err = run_main(["--root", voc2010, "--json", json_path, "--skip-md5", "--allow-subset"], capsys)
    assert code == 0, err
    assert "val 2 ids" in out and "train 1" in out
    split_dir = voc2010 / "ImageSets" / "SegmentationContext"
    assert (split_dir / "val.txt").read_text() == "2008_000002\n2008_000007\n"
    ds = PascalContext(voc2010)
    assert ds.ids == ["2008_000002", "2008_000007"]
    assert set(np.unique(ds[1]["target"]).tolist()) == {0, 15, 47}  # 2008_000007 is k=0 of its phase: cat
    # without --allow-subset the same tree is refused with one message
    code, out, err = run_main(["--root", voc2010, "--verify-only"], capsys)
    assert code == 1 and out == "" and err.count("\n") == 1 and "lists 2 of 5105 ids" in err


def test_missing_detail_api_says_how_to_install(voc2010, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "detail", None)  # makes 'from detail import Detail' raise ImportError
    json_path = tmp_path / "trainval_merged.json"
    json_path.write_text("{}")
    code, _, err = run_main(["--root", voc2010, "--json", json_path, "--skip-md5"], capsys)
    assert code == 1 and "zhanghang1989/detail-api" in err and "unrelated" in err and err.count("\n") == 1


def test_json_md5_mismatch(voc2010, tmp_path, capsys):
    json_path = tmp_path / "trainval_merged.json"
    json_path.write_text("{}")
    code, _, err = run_main(["--root", voc2010, "--json", json_path], capsys)
    assert code == 1 and "md5 mismatch" in err and prepare.JSON_MD5 in err


def test_tar_extraction_refuses_unsafe_member(tmp_path, capsys):
    import io
    import tarfile

    tar_path = tmp_path / "VOCtrainval_03-May-2010.tar"
    with tarfile.open(tar_path, "w") as tar:
        info = tarfile.TarInfo("../evil.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    root = tmp_path / "data" / "VOCdevkit" / "VOC2010"
    code, _, err = run_main(["--root", root, "--tar", tar_path, "--skip-md5"], capsys)
    assert code == 1 and "unsafe" in err and not (tmp_path / "evil.txt").exists()


def _write_labels(root: Path, stems, value=None, mode="L"):
    (root / "SegmentationClassContext").mkdir(exist_ok=True)
    w, h = _voc_size()
    for k, stem in enumerate(stems):
        label = np.zeros((h, w), dtype=np.uint8)
        label[: h // 3] = 47
        label[h // 3:, : w // 4] = 1 + k
        if value is not None:
            label[-1, -1] = value
        im = Image.fromarray(label, mode="L")
        if mode == "P":
            im = im.convert("P")
            im.putpalette([c for i in range(256) for c in (i, i, i)])
        im.save(root / "SegmentationClassContext" / f"{stem}.png")
    split_dir = root / "ImageSets" / "SegmentationContext"
    split_dir.mkdir(parents=True, exist_ok=True)
    (split_dir / "val.txt").write_text("".join(s + "\n" for s in stems))
    (split_dir / "train.txt").write_text("2008_000003\n")


def test_verify_flags_255_as_foreign_encoding(voc2010, capsys):
    _write_labels(voc2010, ["2008_000002"], value=255)
    code, _, err = run_main(["--root", voc2010, "--verify-only", "--allow-subset"], capsys)
    assert code == 1 and "contains 255" in err and "annotations_ctx59" in err


def test_verify_missing_root(tmp_path, capsys):
    code, _, err = run_main(["--root", tmp_path / "VOCdevkit" / "VOC2010", "--verify-only"], capsys)
    assert code == 1 and "JPEGImages does not exist" in err


# ------------------------------------------------------------------------------------------ loader


@pytest.mark.parametrize("mode", ["L", "P"])
def test_loader_reads_small_tree(voc2010, mode):
    _write_labels(voc2010, ["2008_000002", "2008_000007"], mode=mode)
    ds = PascalContext(voc2010, split="val")
    assert len(ds) == 2 and len(PascalContext(voc2010, limit=1)) == 1
    sample = ds[1]
    w, h = _voc_size()
    assert sample["image_id"] == "2008_000007"
    assert sample["image"].dtype == np.uint8 and sample["image"].shape == (h, w, 3)
    assert sample["target"].dtype == np.int64 and sample["target"].shape == (h, w)
    assert set(np.unique(sample["target"]).tolist()) == {0, 2, 47}


def test_loader_missing_root(tmp_path):
    with pytest.raises(CarError, match=r"Pascal Context not found.*datasets/context/README.md"):
        PascalContext(tmp_path / "VOC2010")


def test_loader_missing_label_dir_and_file(voc2010):
    with pytest.raises(CarError, match="no SegmentationClassContext folder"):
        PascalContext(voc2010)
    _write_labels(voc2010, ["2008_000002", "2008_000007"])
    (voc2010 / "SegmentationClassContext" / "2008_000007.png").unlink()
    missing = r"1 file\(s\) listed in the Pascal Context val split are missing.*2008_000007.png"
    with pytest.raises(CarError, match=missing):
        PascalContext(voc2010)


def test_loader_missing_split_file(voc2010):
    (voc2010 / "SegmentationClassContext").mkdir()
    with pytest.raises(CarError, match=r"val.txt does not exist.*datasets/context/README.md"):
        PascalContext(voc2010)


def test_loader_label_value_out_of_range(voc2010):
    _write_labels(voc2010, ["2008_000002"], value=60)
    with pytest.raises(CarError, match="values 60 outside the 60 classes"):
        PascalContext(voc2010)[0]
