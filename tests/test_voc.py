"""Tests for car.data.voc and car.data.common on the real VOC samples in ../shared/data.

Broken files are created only under tmp_path; nothing from the shared data is copied into the repo.
"""

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torch.utils.data import DataLoader

from car.data.common import check_same_size, list_collate, read_label, read_rgb, read_split_file
from car.data.voc import VOCSegmentation
from car.errors import CarError
from tests.conftest import VOC_ROOT, needs_shared_data

needs_voc = needs_shared_data("VOCdevkit/VOC2012/JPEGImages")

# Foreground classes of each val image (every label also has 0 = background and 255 = ignore).
VAL_CLASSES = {
    "2007_000033": {1},  # aeroplane
    "2007_000042": {19},  # train
    "2007_000129": {2, 15},  # bicycle, person
    "2007_000663": {6, 7},  # bus, car
    "2007_000762": {5, 11, 15},  # bottle, diningtable, person
}


def make_voc_copy(tmp_path: Path, ids=("2007_000032", "2007_000033")) -> Path:
    """A small VOC2012 folder in tmp_path holding copies of a few real samples (split "val")."""
    root = tmp_path / "VOCdevkit" / "VOC2012"
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / folder).mkdir(parents=True)
    for image_id in ids:
        shutil.copy(VOC_ROOT / "JPEGImages" / f"{image_id}.jpg", root / "JPEGImages")
        shutil.copy(VOC_ROOT / "SegmentationClass" / f"{image_id}.png", root / "SegmentationClass")
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(ids) + "\n")
    return root


# --- Real data -------------------------------------------------------------------------------
@needs_voc
def test_val_samples_have_expected_format_and_classes():
    dataset = VOCSegmentation(VOC_ROOT, split="val")
    assert dataset.ids == list(VAL_CLASSES)
    for sample in dataset:
        image, target = sample["image"], sample["target"]
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert target.dtype == np.int64 and target.shape == image.shape[:2]
        assert set(np.unique(target).tolist()) == {0, 255} | VAL_CLASSES[sample["image_id"]]


@needs_voc
def test_train_pixel_counts_and_limit():
    dataset = VOCSegmentation(VOC_ROOT, split="train", limit=1)
    assert len(dataset) == 1
    sample = dataset[0]
    assert sample["image_id"] == "2007_000032"
    assert sample["image"].shape == (281, 500, 3)
    assert int((sample["target"] == 1).sum()) == 4734  # aeroplane
    assert int((sample["target"] == 15).sum()) == 866  # person
    assert len(VOCSegmentation(VOC_ROOT, split="train")) == 3


@needs_voc
def test_dataloader_with_list_collate_keeps_variable_sizes():
    loader = DataLoader(VOCSegmentation(VOC_ROOT, split="val", limit=3), batch_size=2, collate_fn=list_collate)
    batches = list(loader)
    assert [len(batch) for batch in batches] == [2, 1]
    assert [sample["image_id"] for sample in batches[0]] == ["2007_000033", "2007_000042"]
    assert batches[0][0]["image"].shape != batches[0][1]["image"].shape  # different sizes stay separate


# --- Dataset-level errors --------------------------------------------------------------------
def test_missing_root_names_the_folder_and_the_fix(tmp_path):
    root = tmp_path / "nowhere" / "VOC2012"
    with pytest.raises(CarError) as excinfo:
        VOCSegmentation(root)
    message = str(excinfo.value)
    assert message.startswith(f"Pascal VOC 2012 not found at {root}:")
    assert "VOCtrainval_11-May-2012.tar" in message and f"{root}/JPEGImages" in message
    assert "datasets/voc/README.md" in message and "paths.data_root=" in message


@needs_voc
def test_missing_split_file(tmp_path):
    root = make_voc_copy(tmp_path)
    with pytest.raises(CarError, match=r"trainval\.txt.*datasets/voc/README\.md"):
        VOCSegmentation(root, split="trainval")


@needs_voc
def test_missing_image_listed_in_split(tmp_path):
    root = make_voc_copy(tmp_path)
    (root / "JPEGImages" / "2007_000033.jpg").unlink()
    with pytest.raises(CarError, match=r"2007_000033\.jpg"):
        VOCSegmentation(root)


@needs_voc
def test_truncated_jpeg_is_detected(tmp_path):
    root = make_voc_copy(tmp_path)
    jpeg = root / "JPEGImages" / "2007_000033.jpg"
    jpeg.write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])
    dataset = VOCSegmentation(root)
    assert dataset[0]["image_id"] == "2007_000032"  # intact sample still loads
    with pytest.raises(CarError, match=r"2007_000033\.jpg is corrupt or truncated"):
        dataset[1]


@needs_voc
def test_label_with_out_of_range_value(tmp_path):
    root = make_voc_copy(tmp_path)
    label_path = root / "SegmentationClass" / "2007_000033.png"
    label = Image.open(label_path)
    values = np.array(label)
    values[0, :5] = 30
    broken = Image.fromarray(values, mode="P")
    broken.putpalette(label.getpalette())
    broken.save(label_path)
    with pytest.raises(CarError, match=r"2007_000033\.png contains values 30 outside the 21 classes"):
        VOCSegmentation(root)[1]


@needs_voc
def test_label_of_different_size(tmp_path):
    root = make_voc_copy(tmp_path)
    label_path = root / "SegmentationClass" / "2007_000033.png"
    Image.open(label_path).crop((0, 0, 100, 80)).save(label_path)
    with pytest.raises(CarError, match=r"2007_000033 differ in size \(image 366x500, label 80x100\)"):
        VOCSegmentation(root)[1]


# --- common.py helpers -----------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK", "P"])
def test_read_rgb_converts_modes_to_rgb(tmp_path, mode):
    suffix = ".jpg" if mode == "CMYK" else ".png"
    path = tmp_path / f"image{suffix}"
    Image.new(mode, (7, 5)).save(path)
    image = read_rgb(path)
    assert image.dtype == np.uint8 and image.shape == (5, 7, 3)


def test_read_rgb_missing_and_garbage_files(tmp_path):
    with pytest.raises(CarError, match=r"missing\.jpg does not exist"):
        read_rgb(tmp_path / "missing.jpg")
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"not an image at all")
    with pytest.raises(CarError, match=r"garbage\.jpg is corrupt"):
        read_rgb(garbage)


def test_read_label_modes_and_validation(tmp_path):
    values = np.array([[0, 1, 2], [255, 2, 0]], dtype=np.uint8)
    Image.fromarray(values, mode="L").save(tmp_path / "gray.png")
    label = read_label(tmp_path / "gray.png", num_classes=3)
    assert label.dtype == np.int64 and label.tolist() == values.tolist()

    with pytest.raises(CarError, match=r"gray\.png contains values 2 outside the 2 classes"):
        read_label(tmp_path / "gray.png", num_classes=2)

    Image.new("RGB", (3, 2)).save(tmp_path / "colour.png")
    with pytest.raises(CarError, match=r"colour\.png has image mode 'RGB'"):
        read_label(tmp_path / "colour.png", num_classes=3)

    with pytest.raises(CarError, match=r"absent\.png does not exist"):
        read_label(tmp_path / "absent.png", num_classes=3)


def test_check_same_size():
    check_same_size(np.zeros((4, 5, 3), np.uint8), np.zeros((4, 5), np.int64), "ok")
    with pytest.raises(CarError, match="sample bad differ in size"):
        check_same_size(np.zeros((4, 5, 3), np.uint8), np.zeros((5, 4), np.int64), "bad")


def test_read_split_file(tmp_path):
    split = tmp_path / "val.txt"
    split.write_text("  a_1\n\nb_2  \n\n")
    assert read_split_file(split) == ["a_1", "b_2"]
    split.write_text("\n\n")
    with pytest.raises(CarError, match="lists no image ids"):
        read_split_file(split)
    with pytest.raises(CarError, match=r"nope\.txt does not exist.*datasets/voc/README\.md"):
        read_split_file(tmp_path / "nope.txt")


def test_list_collate_is_identity():
    batch = [{"image_id": "a"}, {"image_id": "b"}]
    assert list_collate(batch) == batch
