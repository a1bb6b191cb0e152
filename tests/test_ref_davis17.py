"""The Ref-DAVIS17 loader (car/data/ref_davis17.py) on a format-exact DAVIS-2017 tree made here:
JPEG frames, palette PNG annotations (255 void), ImageSets, the four expression files (annotator 2's
in latin-1, a misspelt video name), and each kind of bad input as one sentence naming the file."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from car.data.ref_davis17 import EXPRESSION_SETS, RefDavis17
from car.errors import CarError
from tests.ref_davis17_helpers import H, W, annotation, make_tree, save_png, write_expressions

VIDEOS = {"bike-packing": (3, 2), "blackswan": (4, 1), "classic-car": (2, 1)}  # video -> (frames, objects)
VAL, TRAIN = ["bike-packing", "blackswan"], ["classic-car"]

LINES = {  # expression set -> lines (annotator 2 writes latin-1, annotator 1 UTF-8)
    "annot1": ['bike-packing 1 "a man riding a bike"', 'bike-packing 2 "the bike – a black one"',
               'blackswan 1 "a black swan"', 'clasic-car 1 "a classic car"'],
    "annot1_full_video": ['bike-packing 1 "a man riding a bike down a trail"', 'bike-packing 2 "a bike"',
                          'blackswan 1 "a swan swimming"', 'clasic-car 1 "an old car"'],
    "annot2": ['bike-packing 1 "man with a backpack"', 'bike-packing 2 "bicycle"',
               'blackswan 1 "swan near the café"', 'clasic-car 1 "car"'],
    "annot2_full_video": ['bike-packing 1 "a man"', 'bike-packing 2 "bike"',
                          'blackswan 1 "black bird on the water"', 'clasic-car 1 "a vintage car"'],
}


@pytest.fixture
def tree(tmp_path) -> Path:
    return make_tree(tmp_path / "ref_davis17", VIDEOS, VAL, TRAIN, LINES)


def test_items_follow_the_video_sample_format(tree):
    data = RefDavis17(tree)
    assert len(data) == 4 * 2 and data.expression_sets == list(EXPRESSION_SETS)
    assert [(s["expression_set"], s["video_id"]) for s in (data[0], data[1], data[2])] == [
        ("annot1", "bike-packing"), ("annot1", "blackswan"), ("annot1_full_video", "bike-packing")]
    sample = data[0]
    assert set(sample) == {"video_id", "expression_set", "frame_ids", "frames", "target", "expressions"}
    assert sample["frame_ids"] == ["00000", "00001", "00002"]
    assert sample["frames"].dtype == torch.uint8 and tuple(sample["frames"].shape) == (3, 3, H, W)
    assert sample["target"].dtype == torch.uint8 and tuple(sample["target"].shape) == (3, H, W)
    np.testing.assert_array_equal(sample["target"][1].numpy(), annotation(1, 2))  # palette indices, void kept
    jpeg = np.array(Image.open(tree / "DAVIS" / "JPEGImages" / "480p" / "bike-packing" / "00002.jpg"))
    np.testing.assert_array_equal(sample["frames"][2].permute(1, 2, 0).numpy(), jpeg)
    assert sample["expressions"] == {1: "a man riding a bike", 2: "the bike – a black one"}  # UTF-8


def test_annotator_two_is_latin1_and_sets_are_a_setting(tree):
    data = RefDavis17(tree, expression_sets=["annot2"])
    assert len(data) == 2
    assert data[1]["expressions"] == {1: "swan near the café"}
    assert len(RefDavis17(tree, expression_sets=["annot1", "annot2_full_video"], limit=3)) == 3
    with pytest.raises(CarError, match="no expression set 'annot3'"):
        RefDavis17(tree, expression_sets=["annot3"])


def test_misspelt_video_names_are_read_as_the_davis_names(tree):
    data = RefDavis17(tree, split="train", expression_sets=["annot1", "annot2"])
    assert [s["video_id"] for s in data] == ["classic-car", "classic-car"]
    assert data[0]["expressions"] == {1: "a classic car"} and data[1]["expressions"] == {1: "car"}


def _error(tree, **kwargs) -> str:
    with pytest.raises(CarError) as err:
        RefDavis17(tree, **kwargs)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_frames_and_annotations_differing_in_count_fail_or_skip(tree):
    (tree / "DAVIS" / "Annotations_unsupervised" / "480p" / "blackswan" / "00003.png").unlink()
    message = _error(tree)
    assert "blackswan has 4 frames in" in message and "but 3 annotations in" in message
    data = RefDavis17(tree, on_missing="skip")  # the data guard counts the items that raise
    assert data[0]["video_id"] == "bike-packing"
    with pytest.raises(CarError, match="blackswan has 4 frames"):
        data[1]
    shutil.rmtree(tree / "DAVIS" / "JPEGImages" / "480p" / "bike-packing")
    assert "bike-packing has no frames" in _error(tree, on_missing="skip")  # nothing left to run
    assert "8 of 8 Ref-DAVIS17 items" in _error(tree, on_missing="skip")


def test_frame_and_annotation_of_different_size_name_the_file(tree):
    save_png(tree / "DAVIS" / "Annotations_unsupervised" / "480p" / "blackswan" / "00002.png",
             np.zeros((H + 2, W), np.uint8))
    data = RefDavis17(tree)
    with pytest.raises(CarError, match=r"blackswan/00002.png is 32x26 but its frame is 32x24"):
        data[1]
    Image.new("RGB", (W + 4, H)).save(tree / "DAVIS" / "JPEGImages" / "480p" / "bike-packing" / "00001.jpg")
    with pytest.raises(CarError, match=r"bike-packing/00001.jpg is 36x24 but the video's first frame is 32x24"):
        data[0]


@pytest.mark.parametrize("line, expected", [
    ('motocross 1 "a rider"', "line 5 names video 'motocross', which is not a DAVIS-2017 video"),
    ('blackswan 2 ""', 'line 5 has an empty expression for object 2 of video blackswan'),
    ('blackswan 2 "   "', 'line 5 has an empty expression'),
    ("blackswan 2 a swan", 'line 5 is not `<video> <object id> "<expression>"`'),
    ('blackswan 1 "again"', "line 5 repeats object 1 of video blackswan"),
    ('blackswan 0 "the background"', "line 5 gives object id 0"),
])
def test_bad_expression_lines_name_the_file_and_line(tree, line, expected):
    path = write_expressions(tree, "annot1", LINES["annot1"] + [line])
    message = _error(tree)
    assert f"{path}, {expected}" in message


def test_unknown_object_id_names_the_expression_file(tree):
    path = write_expressions(tree, "annot1_full_video", LINES["annot1_full_video"] + ['blackswan 3 "a duck"'])
    data = RefDavis17(tree, expression_sets=["annot1_full_video"])
    assert data[0]["video_id"] == "bike-packing"
    with pytest.raises(CarError, match=f"{path} refers to object 3 of video blackswan"):
        data[1]


def test_missing_files_encoding_and_partial_expression_files(tree):
    path = tree / "davis_text_annotations" / "Davis17_annot1.txt"
    path.write_bytes('blackswan 1 "caf\xe9"\n'.encode("latin-1"))  # annotator 1 must be UTF-8
    assert f"{path} is not utf-8 text" in _error(tree)
    write_expressions(tree, "annot1", LINES["annot1"][2:])  # bike-packing's lines gone
    assert f"{path} has no expression for video bike-packing" in _error(tree)
    path.unlink()
    assert f"{path} does not exist" in _error(tree)
    assert "Davis17_annot2.txt" not in _error(tree)  # the first problem only
    shutil.rmtree(tree / "DAVIS")
    assert "Ref-DAVIS17 not found" in _error(tree) and "datasets/ref_davis17/README.md" in _error(tree)
