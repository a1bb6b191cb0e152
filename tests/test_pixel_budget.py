"""The pixel budget (car/methods/pixel_budget.py, issue #18): images above car.max_pixels run shrunk and
are scored at full size; with car.resize_large=false they are one sentence (or a counted skip).
A 6000x4000 photo used to stop the run with a ~70 GB allocation."""

import time

import numpy as np
import pytest
from PIL import Image

from car.config import compose
from car.errors import CarError
from car.methods.pixel_budget import DEFAULT_MAX_PIXELS, PixelBudget
from car.run.build import build_segmenter, load_backbones
from car.run.evaluation import evaluate
from car.settings import validate

BIG = (4000, 6000)  # H, W of a 24-megapixel photo
# the tiny CLIP has 8-px patches: max_pixels=65,536 (at 16-px patches) lets it run at 16,384 px
TINY = ["backbone=tiny", "car.max_pixels=65536", "logger=none", "num_overlays=0",
        "trainer.enable_progress_bar=false"]


@pytest.mark.parametrize("size", [(4000, 6000), (6000, 4000), (1001, 999), (100000, 10), (3, 2_000_000)])
@pytest.mark.parametrize("patch", [8, 14, 16])
def test_size_keeps_aspect_and_stays_within_budget(size, patch):
    budget = PixelBudget(1_000_000, patch_size=patch)
    h, w = budget.size_for(*size)
    assert 1 <= h * w <= budget.limit == 1_000_000 * patch**2 // 256
    if min(h, w) > 10:
        assert abs(h / w - size[0] / size[1]) / (size[0] / size[1]) < 0.02
        assert h * w > 0.97 * budget.limit  # not shrunk further than needed


def test_paper_sizes_pass_through_untouched():
    budget = PixelBudget()
    assert budget.max_pixels == DEFAULT_MAX_PIXELS and budget.limit == DEFAULT_MAX_PIXELS
    image = np.zeros((640, 640, 3), dtype=np.uint8)  # the largest COCO image: 409,600 px
    assert budget.fit(image) is image and budget.record(image) == {}
    pred = np.zeros((640, 640), dtype=np.int64)
    assert budget.restore(pred, (640, 640)) is pred


def test_restore_is_nearest_at_pixel_centres():
    pred = np.arange(6, dtype=np.int64).reshape(2, 3)  # [h, w] labels 0..5
    full = PixelBudget.restore(pred, (4, 7))  # [H, W]
    assert full.shape == (4, 7) and full.dtype == np.int64 and set(np.unique(full)) == set(range(6))
    assert (full[:2] == full[0]).all() and (full[2:] == full[2]).all()
    assert full[0].tolist() == [0, 0, 1, 1, 1, 2, 2]
    mask = PixelBudget.restore(np.array([[True, False]]), (3, 5))
    assert mask.dtype == bool and mask.tolist() == [[True, True, False, False, False]] * 3  # centre 2 on an edge


def test_resize_disabled_is_one_sentence():
    budget = PixelBudget(1_000_000, resize=False)
    with pytest.raises(CarError) as info:
        budget.fit(np.zeros((*BIG, 3), dtype=np.uint8), "IMG_0001")
    message = str(info.value)
    assert message.startswith("Image IMG_0001 is 6000x4000 = 24,000,000 pixels, above car.max_pixels=1,000,000")
    assert "car.resize_large=true" in message and "\n" not in message and message.endswith(".")
    tiny = PixelBudget(1_000_000, resize=False, patch_size=8)  # the limit in pixels follows the patch size
    with pytest.raises(CarError, match=r"which is 250,000 pixels for this proposal CLIP's 8-px patches"):
        tiny.check(np.zeros((600, 500, 3), dtype=np.uint8))


def big_photo() -> np.ndarray:
    """[4000, 6000, 3] uint8: a bright square on a textured background."""
    image = np.random.default_rng(0).integers(0, 120, (*BIG, 3), dtype=np.uint8)
    image[1000:3000, 2000:4500] = (230, 40, 40)
    return image


def test_big_image_through_the_segmenter_runs_in_seconds():
    settings = validate(compose(TINY + ["dataset=shapes"]))
    segmenter = build_segmenter(settings, *load_backbones(settings))
    assert segmenter.budget.limit == 16_384
    start = time.perf_counter()
    pred, info = segmenter({"image": big_photo(), "image_id": "big"})
    seconds = time.perf_counter() - start
    assert pred.shape == BIG and pred.dtype == np.int64
    assert info["resized_from"] == list(BIG) and info["resized_to"][0] * info["resized_to"][1] <= 16_384
    assert seconds < 60, seconds  # about 2 s here: the CLIPs see 156x104 pixels, not 24 million


def voc_with_big_photo(root):
    """VOC layout: one 6000x4000 JPEG (and its label) and one 64x48 image."""
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True)
    Image.fromarray(big_photo()).save(root / "JPEGImages" / "big.jpg", quality=90)
    label = np.zeros(BIG, dtype=np.uint8)  # [H, W]
    label[1000:3000, 2000:4500] = 15
    label[:8] = 255
    Image.fromarray(label, mode="L").save(root / "SegmentationClass" / "big.png")
    Image.fromarray(np.full((48, 64, 3), 90, dtype=np.uint8)).save(root / "JPEGImages" / "small.jpg")
    Image.fromarray(np.zeros((48, 64), dtype=np.uint8), mode="L").save(root / "SegmentationClass" / "small.png")
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("big\nsmall\n")
    return label


@pytest.fixture(scope="module")
def voc_big(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    label = voc_with_big_photo(data / "VOCdevkit" / "VOC2012")
    return data, label


def test_big_image_is_resized_and_scored_at_full_size(voc_big, tmp_path):
    data, label = voc_big
    cfg = compose(TINY + ["dataset=voc", f"paths.data_root={data}"], output_dir=tmp_path)
    metrics = evaluate(cfg)
    assert metrics["num_images"] == 2 and metrics["skipped"]["count"] == 0
    assert metrics["resized"]["count"] == 1 and metrics["resized"]["max_pixels"] == 65_536
    assert metrics["resized"]["images"][0]["image_id"] == "big"
    assert metrics["resized"]["images"][0]["resized_from"] == list(BIG)
    scored = np.asarray(metrics["confusion_matrix"]).sum()  # every labelled pixel of both images, full size
    assert scored == (label != 255).sum() + 48 * 64


def test_big_image_with_resizing_disabled(voc_big, tmp_path):
    data, _ = voc_big
    base = TINY + ["dataset=voc", f"paths.data_root={data}", "car.resize_large=false"]
    with pytest.raises(CarError) as info:
        evaluate(compose(base, output_dir=tmp_path / "fail"))
    message = str(info.value)
    assert message.startswith("Image big is 6000x4000 = 24,000,000 pixels, above car.max_pixels=65,536")
    assert "\n" not in message and "car.resize_large=true" in message
    metrics = evaluate(compose(base + ["on_bad_sample=skip"], output_dir=tmp_path / "skip"))
    assert metrics["num_images"] == 1 and metrics["skipped"]["count"] == 1 and metrics["resized"]["count"] == 0
    assert metrics["skipped"]["samples"][0]["error"] == message
