"""car.api (issue #19): CaR on your own image from Python, on the embedded tiny CLIP (shapes profile)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from car.api import CarSegmenter, compose_profile, read_image
from car.data.shapes import CLASSES
from car.errors import CarError
from tests.photo_helpers import PHONE_SIZE, phone_jpeg, save_scene, scene


@pytest.fixture(scope="module")
def seg():
    return CarSegmenter.from_profile("shapes")


def test_result_shapes_scores_and_trace(seg, tmp_path):
    path = save_scene(tmp_path / "scene.png", size=(192, 128))
    out = seg(path, CLASSES)
    assert out.label_map.shape == (128, 192) and out.label_map.dtype == np.int64
    assert out.image.shape == (128, 192, 3)
    assert set(np.unique(out.label_map)) <= set(range(len(CLASSES) + 1))
    masks = out.masks
    assert masks.shape == (len(CLASSES), 128, 192) and masks.dtype == bool
    assert (masks.sum(axis=0) <= 1).all()  # one phrase per pixel, as in the label map
    # final scores: a float for every survivor (> θ unless it is the argmax fallback), None for the pruned
    kept = [k for k, s in enumerate(out.scores) if s is not None]
    assert kept and all(isinstance(out.scores[k], float) for k in kept)
    for k, _ in enumerate(out.texts):
        assert not masks[k].any() or out.scores[k] is not None  # a painted phrase survived
    # trace: step 1 sees every phrase, later steps only the kept ones; the last step prunes nothing
    assert out.trace[0]["live"] == list(CLASSES)
    assert len(out.trace[0]["scores"]) == len(CLASSES)
    for prev, step in zip(out.trace, out.trace[1:]):
        assert step["live"] == prev["kept"]
    assert out.trace[-1]["pruned"] == [] and [out.texts[k] for k in kept] == out.trace[-1]["live"]
    for record in out.phrases():
        assert (record["pruned_at_step"] is None) == record["kept"]
    assert set(out.timings) == {"read", "car", "post", "total"}
    json.dumps(out.to_json())  # JSON-ready (ids dropped from the trace)


def test_path_pil_and_array_agree(seg, tmp_path):
    path = save_scene(tmp_path / "scene.png")
    by_path = seg(path, ["circle", "heart", "square"])
    by_pil = seg(Image.open(path), ["circle", "heart", "square"])
    by_array = seg(np.asarray(Image.open(path)), ["circle", "heart", "square"])
    assert np.array_equal(by_path.label_map, by_pil.label_map)
    assert np.array_equal(by_path.label_map, by_array.label_map)
    assert by_path.scores == by_array.scores


def test_same_path_as_evaluate():
    """The API and evaluate.py's builders give the same label map for the dataset's own queries."""
    from car.config import compose
    from car.run.build import build_segmenter, load_backbones
    from car.settings import validate

    cfg = compose(["dataset=shapes"])
    settings = validate(cfg)
    segmenter = build_segmenter(settings, *load_backbones(settings))
    sample = {"image": scene(18)["image"], "image_id": "shapes_val_00018"}
    expected, _ = segmenter(sample)
    out = CarSegmenter.from_profile("shapes")(sample["image"], list(cfg.dataset.queries))
    assert np.array_equal(out.label_map, expected)


def test_phone_photo_runs_shrunk_and_comes_back_full_size(seg, tmp_path):
    path = phone_jpeg(tmp_path / "IMG_0001.jpg")
    out = seg(path, ["circle", "heart", "ring"])
    width, height = PHONE_SIZE
    assert out.label_map.shape == (height, width)
    assert out.resized["resized_from"] == [height, width]
    small_h, small_w = out.resized["resized_to"]
    assert small_h * small_w <= seg.segmenter.budget.limit and small_w > small_h  # aspect kept
    assert out.masks.shape == (3, height, width)
    assert out.label_map.any()  # something was found and painted back at full size


def test_exif_orientation_applied(seg, tmp_path):
    img = Image.open(save_scene(tmp_path / "a.png", size=(96, 64)))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90° clockwise to view
    img.save(tmp_path / "rotated.jpg", exif=exif)
    assert read_image(tmp_path / "rotated.jpg").shape == (96, 64, 3)
    assert seg(tmp_path / "rotated.jpg", ["circle"]).label_map.shape == (96, 64)


def test_with_overrides_reuses_the_clips(seg):
    other = seg.with_overrides(["car.theta=0.2", "car.crf.enabled=false"])
    assert other.clips is seg.clips and other.cfg.car.theta == 0.2 and not other.cfg.car.crf.enabled
    assert other.settings()["theta"] == 0.2 and seg.settings()["theta"] == 0.6
    out = other(scene()["image"], CLASSES)
    assert all(s is None or s > 0.2 for s in out.scores) or sum(s is not None for s in out.scores) == 1


def test_profile_backbone_and_overrides_compose():
    cfg = compose_profile("voc", backbone="vitb16", overrides=["car.theta=0.5"])
    assert cfg.backbone.name == "vitb16" and cfg.car.theta == 0.5 and cfg.dataset.name == "voc"
    assert compose_profile("voc").backbone.name == "vitb16_vitl14"  # the profile's own default
    cfg = compose_profile("shapes", weights="/models/tiny.pt")
    assert cfg.backbone.proposal.pretrained == cfg.backbone.classifier.pretrained == "/models/tiny.pt"


@pytest.mark.parametrize("call, match", [
    (lambda: compose_profile("nope"), "Unknown profile 'nope'"),
    (lambda: compose_profile("shapes", backbone="nope"), "Unknown backbone 'nope'"),
    (lambda: compose_profile("refcoco"), "Unknown profile"),
    (lambda: compose_profile("shapes", overrides=["car.theta=2"]), "car.theta"),
    (lambda: compose_profile("shapes", overrides=["car.thetaa=1"]), "Cannot compose"),
    (lambda: compose_profile("voc", weights="/models/ViT-B-16.pt"), "cannot serve both"),
])
def test_config_errors_are_one_sentence(call, match):
    with pytest.raises(CarError, match=match) as err:
        call()
    assert "\n" not in str(err.value)


def test_input_errors_are_one_sentence(seg, tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(CarError, match="notes.png is corrupt or truncated, or not an image"):
        seg(tmp_path / "notes.png", ["circle"])
    with pytest.raises(CarError, match="does not exist"):
        seg(tmp_path / "missing.jpg", ["circle"])
    with pytest.raises(CarError, match="phrase list is empty"):
        seg(scene()["image"], [" ", ""])
    with pytest.raises(CarError, match="must be"):
        seg(np.zeros((4, 4, 2), np.uint8), ["circle"])
