"""The rest of the field's benchmark suite: ADE20K-150, ADE-847, Pascal Context-459, COCO-Stuff-171 and
Cityscapes (issue #21): loaders on format-exact trees, their label mappings checked by hand on a few
pixels, every bad input with its one sentence, and the preparation scripts.

Trees are written in tmp_path in the real on-disk layouts (file names, folders, PNG/TIFF modes);
COCO-Stuff's come from the real sample maps in ../shared/data/coco (skipped without them).
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from car.config import compose
from car.data.ade import ADE20K, ADE20KFull
from car.data.cityscapes import TRAIN_LABEL_IDS, Cityscapes
from car.data.coco_stuff import COCOStuff
from car.data.context459 import PascalContext459
from car.errors import CarError
from tests.conftest import SHARED_DATA, load_script, needs_shared_data, run_script

REPO = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(0)
COCO_IDS = ["000000039769", "000000142238", "000000439180"]
needs_coco = needs_shared_data("coco/annotations/val2017")


def prepare_script(name: str):
    return load_script(REPO / "datasets" / name / "prepare.py", f"car_{name}_prepare")


def write_image(path: Path, h: int = 48, w: int = 64) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)


def write_label(path: Path, label: np.ndarray) -> None:
    """'L' PNG for 8-bit labels, uint16 TIFF ('I;16') for the detectron2 16-bit ones."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(label.astype(np.uint16 if path.suffix == ".tif" else np.uint8)).save(path)


def striped(values: list[int], h: int = 48, w: int = 64) -> np.ndarray:
    """A label map whose column blocks hold `values` in order."""
    label = np.zeros((h, w), dtype=np.int64)
    for i, block in enumerate(np.array_split(np.arange(w), len(values))):
        label[:, block] = values[i]
    return label


# ------------------------------------------------------------------------------------------ trees


def ade150_tree(root: Path, n: int = 2, values=(0, 1, 37, 150)) -> Path:
    data = root / "ADEChallengeData2016"
    for i in range(1, n + 1):
        write_image(data / "images" / "validation" / f"ADE_val_{i:08d}.jpg")
        write_label(data / "annotations" / "validation" / f"ADE_val_{i:08d}.png", striped(list(values)))
    return data


def d2_tree(root: Path, image_dir: str, label_dir: str, stems: list[str], values) -> Path:
    for stem in stems:
        write_image(root / image_dir / "validation" / f"{stem}.jpg")
        write_label(root / label_dir / "validation" / f"{stem}.tif", striped(list(values)))
    return root


def ade847_tree(root: Path, n: int = 2, values=(0, 12, 846, 65535)) -> Path:
    return d2_tree(root / "ADE20K_2021_17_01", "images_detectron2", "annotations_detectron2",
                   [f"ADE_val_{i:08d}" for i in range(1, n + 1)], values)


def context459_tree(root: Path, n: int = 2, values=(0, 6, 458, 65535)) -> Path:
    return d2_tree(root / "pascal_ctx_d2", "images", "annotations_ctx459",
                   [f"2008_{i:06d}" for i in range(1, n + 1)], values)


def cityscapes_tree(root: Path, values=(7, 26, 0, 255, 33), per_city=(("frankfurt", 1), ("lindau", 1))) -> Path:
    data = root / "cityscapes"
    for city, n in per_city:
        for i in range(n):
            stem = f"{city}_000000_{i:06d}"
            write_image(data / "leftImg8bit" / "val" / city / f"{stem}_leftImg8bit.png", 32, 64)
            write_label(data / "gtFine" / "val" / city / f"{stem}_gtFine_labelIds.png", striped(list(values), 32, 64))
    return data


@pytest.fixture
def coco_stuff_tree(tmp_path):
    """tmp copy of the real COCO sample (images + COCO-Stuff maps), converted by the prepare script."""
    root = tmp_path / "coco"
    for i in COCO_IDS:
        for part, name in (("images", f"{i}.jpg"), ("annotations", f"{i}.png")):
            (root / part / "val2017").mkdir(parents=True, exist_ok=True)
            shutil.copy(SHARED_DATA / "coco" / part / "val2017" / name, root / part / "val2017" / name)
    assert prepare_script("coco_stuff").main(["--root", str(root), "--allow-subset"]) == 0
    return root


# ------------------------------------------------------------------------- label mappings by hand


def test_ade150_keeps_1_150_and_ignores_other(tmp_path):
    data = ADE20K(ade150_tree(tmp_path), limit=1)
    sample = data[0]
    assert sample["image"].shape == (48, 64, 3) and sample["image_id"] == "ADE_val_00000001"
    target = sample["target"]  # blocks of on-disk 0, 1, 37, 150
    assert target[0, 0] == 255 and target[5, 20] == 1 and target[5, 40] == 37 and target[47, 63] == 150
    assert set(np.unique(target)) == {1, 37, 150, 255} and target.dtype == np.int64


@pytest.mark.parametrize("kind", ["ade847", "context459"])
def test_detectron2_tifs_shift_by_one_and_keep_65535_ignored(tmp_path, kind):
    if kind == "ade847":
        data, top = ADE20KFull(ade847_tree(tmp_path)), 847
    else:
        data, top = PascalContext459(context459_tree(tmp_path)), 459
    assert data.ignore_index == 65535 and data.num_classes == top + 1 and len(data) == 2
    with Image.open(data._label_path(data.ids[0])) as label:
        assert label.mode.startswith("I;16")  # what detectron2's converters write
    target = data[0]["target"]
    assert target[0, 0] == 1 and target[0, 63] == 65535  # on-disk 0 -> 1, unlabelled stays ignored
    assert target[0, 40] == top  # the last class, on disk top - 1
    assert target[0, 20] == (13 if kind == "ade847" else 7)


def test_cityscapes_label_ids_become_train_ids_plus_one(tmp_path):
    data = Cityscapes(cityscapes_tree(tmp_path))
    assert data.ids == ["frankfurt/frankfurt_000000_000000", "lindau/lindau_000000_000000"]
    target = data[0]["target"]  # blocks of label ids 7 road, 26 car, 0 unlabeled, 255, 33 bicycle
    row = [target[0, c] for c in (0, 20, 30, 45, 63)]
    assert row == [1, 14, 255, 255, 19]
    assert len(TRAIN_LABEL_IDS) == 19 and data.num_classes == 20


@needs_coco
def test_coco_stuff_conversion_and_loader_by_hand(coco_stuff_tree):
    raw = np.array(Image.open(SHARED_DATA / "coco" / "annotations" / "val2017" / "000000142238.png"))
    converted = np.array(Image.open(coco_stuff_tree / "annotations" / "val2017" / "000000142238_labelTrainIds.png"))
    # COCO-Stuff value (id - 1) -> train id: person 0 -> 0, sports ball 36 -> 32, grass 123 -> 112,
    # sky-other 156 -> 145, tree 168 -> 157, unlabelled 255 -> 255
    for value, train_id in ((0, 0), (36, 32), (123, 112), (156, 145), (168, 157), (255, 255)):
        assert (raw == value).any() and set(np.unique(converted[raw == value])) == {train_id}
    data = COCOStuff(coco_stuff_tree)
    assert data.ids == COCO_IDS
    sample = data[COCO_IDS.index("000000142238")]
    assert set(np.unique(sample["target"][raw == 36])) == {33} and set(np.unique(sample["target"][raw == 255])) == {255}


@needs_shared_data("class_names/sclip_naclip")
def test_class_names_follow_the_peers_files():
    """The dataset configs' class names are the classes of the peers' name files, in their order."""
    for dataset, family, filename in (("coco_stuff", "sclip_naclip", "cls_coco_stuff.txt"),
                                      ("cityscapes", "clearclip", "cls_city_scapes.txt"),
                                      ("ade150", "sclip_naclip", "cls_ade20k.txt")):
        names = list(compose([f"dataset={dataset}"]).dataset.class_names)[1:]
        lines = (SHARED_DATA / "class_names" / family / filename).read_text().split("\n")
        assert [n.replace(" ", "") for n in names] == [line.strip().replace(" ", "") for line in lines], dataset


@pytest.mark.parametrize("dataset,classes,first,last", [
    ("ade150", 150, "wall", "flag"), ("ade847", 847, "wall", "adding machine, totalizer, totaliser"),
    ("context459", 459, "accordion", "wool"), ("coco_stuff", 171, "person", "wood"),
    ("cityscapes", 19, "road", "bicycle"),
])
def test_configs_cover_every_class_once(dataset, classes, first, last):
    d = compose([f"dataset={dataset}"]).dataset
    assert d.num_classes == classes + 1 and len(d.class_names) == classes + 1 and d.bg_protocol == "car"
    assert d.class_names[1] == first and d.class_names[-1] == last
    ids = sorted(i for p in d.passes for i in p.label_ids)
    assert ids == list(range(1, classes + 1))  # stuff pass + things pass = every class once
    stuff, things = d.passes
    assert list(stuff.background_words) == list(things.queries)  # CaR's stuff pass: things as background words


def test_official_thresholds_and_ids():
    """CaR's official configs (ade_150 / ade_847 / pascal_context_459.yaml) and ids (data/*.py)."""
    ade = compose(["dataset=ade150"])
    assert (ade.car.eta, ade.car.theta, ade.car["lambda"]) == (0.6, 0.25, 0.7)
    assert compose(["dataset=context459"]).car.eta == 0.4
    stuff = ade.dataset.passes[0]
    assert list(stuff.label_ids)[:3] == [1, 3, 4] and stuff.queries[0] == "wall" and "lake" in stuff.queries
    assert stuff.label_ids[list(stuff.queries).index("lake")] == 129  # ADE_STUFF_CLASS_ID 128 + 1
    ctx = compose(["dataset=context459"]).dataset.passes[0]
    assert ctx.label_ids[list(ctx.queries).index("wood")] == 458  # PASCAL_459_STUFF_CLASS_ID 457 + 1


# --------------------------------------------------------------------------- bad inputs, one sentence


def one_sentence(err: BaseException) -> str:
    message = str(err)
    assert "\n" not in message and message.endswith(".")
    return message


def test_missing_trees(tmp_path):
    cases = [(ADE20K, tmp_path / "ADEChallengeData2016", "ADE20K-150 images not found"),
             (ADE20KFull, tmp_path / "ADE20K_2021_17_01", "ADE-847 images not found"),
             (PascalContext459, tmp_path / "pascal_ctx_d2", "Pascal Context-459 images not found"),
             (COCOStuff, tmp_path / "coco", "COCO-Stuff-171 images not found"),
             (Cityscapes, tmp_path / "cityscapes", "Cityscapes images not found")]
    for loader, root, start in cases:
        with pytest.raises(CarError) as info:
            loader(root)
        assert one_sentence(info.value).startswith(start) and "README.md" in str(info.value)


def test_missing_labels_and_partial_trees(tmp_path):
    data = ade150_tree(tmp_path, n=3)
    (data / "annotations" / "validation" / "ADE_val_00000002.png").unlink()
    with pytest.raises(CarError, match=r"^1 of 3 ADE20K-150 label file\(s\) are missing, e.g. .*ADE_val_00000002.png"):
        ADE20K(data)
    skipping = ADE20K(data, on_missing="skip")  # on_bad_sample=skip: the sample fails alone when read
    with pytest.raises(CarError, match="does not exist"):
        skipping[1]
    shutil.rmtree(data / "annotations")
    with pytest.raises(CarError) as info:
        ADE20K(data)
    assert one_sentence(info.value).startswith("ADE20K-150 labels not found")


@pytest.mark.parametrize("kind,bad", [("ade150", 151), ("ade847", 847), ("context459", 459), ("cityscapes", 40)])
def test_wrong_ids_are_refused(tmp_path, kind, bad):
    if kind == "ade150":
        data = ADE20K(ade150_tree(tmp_path, n=1, values=(1, bad)))
    elif kind == "ade847":
        data = ADE20KFull(ade847_tree(tmp_path, n=1, values=(0, bad)))
    elif kind == "context459":
        data = PascalContext459(context459_tree(tmp_path, n=1, values=(0, bad)))
    else:
        data = Cityscapes(cityscapes_tree(tmp_path, values=(7, bad), per_city=(("frankfurt", 1),)))
    with pytest.raises(CarError) as info:
        data[0]
    assert f"contains values {bad} that are not" in one_sentence(info.value)


def test_size_mismatch_and_colour_labels(tmp_path):
    data = ade150_tree(tmp_path, n=1)
    label = data / "annotations" / "validation" / "ADE_val_00000001.png"
    write_label(label, striped([1, 2], 40, 64))
    with pytest.raises(CarError) as info:
        ADE20K(data)[0]
    assert "differ in size" in one_sentence(info.value)
    Image.fromarray(np.zeros((48, 64, 3), dtype=np.uint8)).save(label)  # a colour-rendered mask
    with pytest.raises(CarError, match="has image mode 'RGB'"):
        ADE20K(data)[0]


def test_ignore_index_inside_the_label_space_is_refused(tmp_path):
    with pytest.raises(CarError, match="ignore_index 255 is one of the 848 class ids"):
        ADE20KFull(ade847_tree(tmp_path), ignore_index=255)


# ------------------------------------------------------------------------------- preparation scripts


def fake_zip(path: Path, member: str) -> Path:
    """A zip of the official name holding one made-up member (its digest is not the published one)."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, "x")
    return path


def test_prepare_ade150_counts_checksum_and_values(tmp_path, capsys):
    prepare = prepare_script("ade150")
    ade150_tree(tmp_path, n=3)
    code, _, err = run_script(prepare, ["--data-root", tmp_path], capsys)
    assert code == 1 and "holds 3 of 2000 images" in err and "--allow-subset" in err  # a partial tree is refused
    code, out, _ = run_script(prepare, ["--data-root", tmp_path, "--allow-subset"], capsys)
    assert code == 0 and out.startswith("OK: ADE20K-150 validation") and "3 images" in out
    write_label(tmp_path / "ADEChallengeData2016" / "annotations" / "validation" / "ADE_val_00000002.png",
                striped([1, 151]))
    code, _, err = run_script(prepare, ["--data-root", tmp_path, "--allow-subset"], capsys)
    assert code == 1 and "values [151] outside 0..150" in err
    fake = fake_zip(tmp_path / "ADEChallengeData2016.zip", "ADEChallengeData2016/objectInfo150.txt")
    code, _, err = run_script(prepare, ["--data-root", tmp_path / "new", "--zip", fake], capsys)
    assert code == 1 and err.startswith("error: sha1 mismatch") and "219e1696abb36c8ba3a3afe7fb2f4b4606a897c7" in err
    assert err.count("\n") == 1


def test_prepare_cityscapes_checks_cities_and_md5(tmp_path, capsys):
    prepare = prepare_script("cityscapes")
    cityscapes_tree(tmp_path)
    code, _, err = run_script(prepare, ["--data-root", tmp_path], capsys)
    assert code == 1 and "holds 2 of 500 images" in err
    code, out, _ = run_script(prepare, ["--data-root", tmp_path, "--allow-subset"], capsys)
    assert code == 0 and "2 images with gtFine labels" in out
    (tmp_path / "cityscapes" / "gtFine" / "val" / "lindau" / "lindau_000000_000000_gtFine_labelIds.png").unlink()
    code, _, err = run_script(prepare, ["--data-root", tmp_path, "--allow-subset"], capsys)
    assert code == 1 and "1 of 2 missing" in err
    fake = fake_zip(tmp_path / "gtFine_trainvaltest.zip", "gtFine/val/x.txt")
    code, _, err = run_script(prepare, ["--data-root", tmp_path / "new", "--gtfine-zip", fake], capsys)
    assert code == 1 and "md5 mismatch" in err and "4237c19de34c8a376e9ba46b495d6f66" in err


def test_prepare_ade847_converts_a_seg_png_and_verifies(tmp_path, capsys):
    prepare = prepare_script("ade847")
    root = tmp_path / "ADE20K_2021_17_01"
    folder = root / "images" / "ADE" / "validation" / "cultural" / "hall"
    write_image(folder / "ADE_val_00000001.jpg", 600, 700)  # short side above 512: resized
    seg = np.zeros((600, 700, 3), dtype=np.uint8)
    seg[:, :350, 0], seg[:, :350, 1] = 2978 // 256 * 10, 2978 % 256  # wall (train id 0)
    seg[:, 350:, 0], seg[:, 350:, 1] = 30, 9  # object class 3 * 256 + 9 = 777: not among the 847
    Image.fromarray(seg).save(folder / "ADE_val_00000001_seg.png")
    code, _, err = run_script(prepare, ["--root", root], capsys)
    assert code == 1 and "holds 1 of 2000 images" in err  # converted, then the partial tree refused
    code, out, _ = run_script(prepare, ["--root", root, "--verify-only", "--allow-subset"], capsys)
    assert code == 0 and out.startswith("OK: ADE-847 validation")
    label = np.array(Image.open(root / "annotations_detectron2" / "validation" / "ADE_val_00000001.tif"))
    assert label.shape == (512, 597) and label.dtype == np.uint16  # 700 / 600 * 512 = 597.3
    assert label[0, 0] == 0 and label[0, -1] == 65535
    assert ADE20KFull(root)[0]["target"][0, 0] == 1  # the loader: wall = 1


def test_prepare_context459_converts_label_maps(tmp_path, capsys):
    pytest.importorskip("scipy")
    from scipy.io import savemat

    prepare = prepare_script("context459")
    voc = tmp_path / "VOCdevkit" / "VOC2010"
    (voc / "ImageSets" / "SegmentationContext").mkdir(parents=True)
    (voc / "ImageSets" / "SegmentationContext" / "val.txt").write_text("2008_000002\n")
    write_image(voc / "JPEGImages" / "2008_000002.jpg")
    (voc / "trainval").mkdir()
    savemat(voc / "trainval" / "2008_000002.mat", {"LabelMap": striped([0, 1, 459]).astype(np.uint16)})
    root = tmp_path / "pascal_ctx_d2"
    code, _, err = run_script(prepare, ["--root", root, "--voc2010", voc], capsys)
    assert code == 1 and "lists 1 of 5105 val ids" in err
    code, out, _ = run_script(prepare, ["--root", root, "--voc2010", voc, "--allow-subset"], capsys)
    assert code == 0 and "1 images with labels" in out
    label = np.array(Image.open(root / "annotations_ctx459" / "validation" / "2008_000002.tif"))
    assert (label[0, 0], label[0, 30], label[0, 63]) == (65535, 0, 458)
    assert PascalContext459(root)[0]["target"][0, 63] == 459


@needs_coco
def test_prepare_coco_stuff_refuses_a_partial_tree_and_foreign_maps(coco_stuff_tree, capsys):
    prepare = prepare_script("coco_stuff")
    code, _, err = run_script(prepare, ["--root", coco_stuff_tree, "--verify-only"], capsys)
    assert code == 1 and "holds 3 of 5000 images" in err
    code, out, _ = run_script(prepare, ["--root", coco_stuff_tree, "--verify-only", "--allow-subset"], capsys)
    assert code == 0 and "3 images with labels (3 labels checked)" in out
    bad = coco_stuff_tree / "annotations" / "val2017" / "000000039769.png"
    Image.fromarray(np.full((480, 640), 200, dtype=np.uint8)).save(bad)
    code, _, err = run_script(prepare, ["--root", coco_stuff_tree, "--allow-subset", "--overwrite"], capsys)
    assert code == 1 and "values [200] are not COCO-Stuff labels" in err
