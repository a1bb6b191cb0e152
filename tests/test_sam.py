"""CaR + SAM (CAR_SPEC §7.5): the matching rule by hand, the SAM mask cache, loading errors, and
the whole path end to end on a real VOC sample with a randomly initialised micro HQ-SAM."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from car.config import compose
from car.errors import CarError
from car.postprocess.sam.generator import SamMaskCache, load_sam
from car.postprocess.sam.matching import SamMatcher, match_sam_masks
from tests.conftest import REPO, SHARED_DATA, require_shared_data

pytest.importorskip("segment_anything_hq")


def box(y0, y1, x0, x1, shape=(20, 20)) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


# ------------------------------------------------------------------ the matching rule, by hand
def test_sam_masks_inside_the_mask_are_kept_by_intersection_over_minimum():
    mask = box(0, 10, 0, 10)  # 100 px
    inside = box(0, 10, 0, 5)  # 50 px, all inside: inter/|a| = 1.0
    outside = box(12, 20, 12, 20)  # no overlap
    union = match_sam_masks(mask, np.stack([inside, outside]), iom_thres=0.6, min_pred_threshold=0.05)
    assert np.array_equal(union, inside)


def test_sam_mask_covering_the_mask_is_kept_by_its_share_of_the_mask():
    mask = box(0, 10, 0, 10)
    big = box(0, 20, 0, 20)  # inter/|a| = 0.25, inter/|m| = 1.0 -> iom 1.0
    union = match_sam_masks(mask, big[None], iom_thres=0.6, min_pred_threshold=0.05)
    assert np.array_equal(union, big)


def test_tiny_sam_masks_that_only_touch_the_mask_do_not_count():
    mask = box(0, 10, 0, 10)  # 100 px
    speck = box(0, 2, 0, 2)  # 4 px inside: inter/|a| = 1 but inter/|m| = 0.04 < 0.05 -> coverage zeroed
    half = box(0, 10, 0, 7)  # 70 px inside: iom 1.0
    union = match_sam_masks(mask, np.stack([speck, half]), iom_thres=0.6, min_pred_threshold=0.05)
    assert np.array_equal(union, half)
    # with the threshold lowered, the speck counts again (it is inside `half` anyway, so check alone)
    alone = match_sam_masks(mask, speck[None], iom_thres=0.6, min_pred_threshold=0.0)
    assert np.array_equal(alone, speck)


def test_without_a_match_the_single_best_sam_mask_is_kept():
    mask = box(0, 10, 0, 10)
    a = box(0, 10, 8, 20)  # inter 20: iom max(20/120, 20/100) = 0.2
    b = box(0, 10, 5, 20)  # inter 50: iom max(50/150, 0.5) = 0.5  <- best, below 0.6
    union = match_sam_masks(mask, np.stack([a, b]), iom_thres=0.6, min_pred_threshold=0.05)
    assert np.array_equal(union, b)


def test_mask_is_replaced_only_above_the_matching_iou():
    mask = box(0, 10, 0, 10)
    close = box(0, 10, 0, 10) | box(10, 11, 0, 5)  # IoU 100/105 = 0.952 > 0.9
    far = box(0, 12, 0, 12)  # IoU 100/144 = 0.69
    matcher = SamMatcher(iom_thres=0.6, min_pred_threshold=0.05, matching_thresh=0.9)
    assert np.array_equal(matcher.refine(mask, close[None]), close)
    assert np.array_equal(matcher.refine(mask, far[None]), mask)
    assert np.array_equal(SamMatcher(matching_thresh=0.5).refine(mask, far[None]), far)


def test_empty_masks_and_no_sam_masks_leave_everything_unchanged():
    matcher = SamMatcher()
    empty = np.zeros((20, 20), bool)
    assert not matcher.refine(empty, box(0, 20, 0, 20)[None]).any()
    mask = box(0, 10, 0, 10)
    assert np.array_equal(matcher.refine(mask, np.zeros((0, 20, 20), bool)), mask)
    stack = np.stack([mask, empty])
    assert np.array_equal(matcher(stack, None), stack)
    assert matcher(stack, box(0, 10, 0, 10)[None]).shape == (2, 20, 20)


# ------------------------------------------------------------------ cache and loading
def test_mask_cache_roundtrip_and_corrupt_entry_is_a_miss(tmp_path):
    cache = SamMaskCache(tmp_path)
    masks = np.random.default_rng(0).random((3, 7, 11)) > 0.5
    cache.save("ab" * 32, masks)
    assert np.array_equal(cache.load("ab" * 32), masks)
    assert cache.load("cd" * 32) is None
    cache._path("ab" * 32).write_bytes(b"not an npz")
    assert cache.load("ab" * 32) is None


def test_missing_checkpoint_is_one_sentence(tmp_path):
    with pytest.raises(CarError, match="does not exist.*postprocess.checkpoint="):
        load_sam("hq", {"embed_dim": 64, "depth": 2, "num_heads": 2, "global_attn_indexes": [1]},
                 str(tmp_path / "sam_hq_vit_h.pth"))


def test_malicious_checkpoint_runs_nothing(tmp_path):
    import pickle

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"x": Evil()}))
    with pytest.raises(CarError, match="not a plain PyTorch state dict"):
        load_sam("hq", {"embed_dim": 64, "depth": 2, "num_heads": 2, "global_attn_indexes": [1]}, str(path))
    assert not marker.exists()


def test_checkpoint_of_the_wrong_variant_is_refused(tmp_path):
    import torch

    encoder = {"embed_dim": 64, "depth": 2, "num_heads": 2, "global_attn_indexes": [1]}
    plain = load_sam("sam", encoder, "random")  # segment-anything weights lack HQ-SAM's extra tokens
    path = tmp_path / "sam_micro.pth"
    torch.save(plain.state_dict(), path)
    with pytest.raises(CarError, match="does not fit variant 'hq'.*weights missing"):
        load_sam("hq", encoder, str(path))
    assert load_sam("sam", encoder, str(path)) is not None


def test_offline_missing_sam_checkpoint_exits_2_with_one_sentence(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / "evaluate.py"), "postprocess=sam", "dataset.limit=1", "logger=none",
         f"paths.weights_dir={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}"],
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert err[-1].startswith("error: SAM checkpoint") and "sam_hq_vit_h.pth" in err[-1]
    assert "Traceback" not in proc.stderr


# ------------------------------------------------------------------ end to end
def test_published_sam_rows_are_used_for_sam_runs():
    from car.reporting.results import published_row

    assert published_row(compose(["dataset=voc"]))["miou"] == 67.6
    assert published_row(compose(["dataset=voc", "postprocess=sam"]))["miou"] == 70.2
    assert published_row(compose(["dataset=voc20", "postprocess=sam"])) is None  # the paper has no such row


def test_sam_changes_the_run_key():
    from car.run.store import run_key

    assert run_key(compose(["dataset=voc"])) != run_key(compose(["dataset=voc", "postprocess=sam_micro_random"]))


SAM_RUN = ["backbone=micro_random", f"paths.data_root={SHARED_DATA}", "dataset=voc", "dataset.limit=1",
           "logger=none", "num_overlays=0", "trainer.enable_progress_bar=false", "postprocess=sam_micro_random"]


def test_car_plus_sam_end_to_end_on_a_voc_sample_with_a_cached_second_run(tmp_path):
    from car.run.evaluation import evaluate

    require_shared_data()
    cache = tmp_path / "cache"
    first = evaluate(compose(SAM_RUN + [f"paths.cache_dir={cache}"], output_dir=tmp_path / "a"))
    sam = first["postprocess"]["sam"]
    assert first["postprocess"]["name"] == "sam"
    assert sam["variant"] == "hq" and sam["model"] == "micro" and sam["iom_thres"] == 0.6  # VOC's threshold
    assert sam["matching_thresh"] == 0.9 and sam["min_pred_threshold"] == 0.05
    assert sam["generator"]["points_per_side"] == 4
    assert sam["cache"] == {"hits": 0, "misses": 1}
    assert len(list((cache / "sam").rglob("*.npz"))) == 1
    on_disk = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert on_disk["postprocess"]["sam"]["variant"] == "hq"

    # a threshold sweep re-uses SAM's masks: only the matching changes
    second = evaluate(compose(SAM_RUN + [f"paths.cache_dir={cache}", "postprocess.matching_thresh=0.0"],
                              output_dir=tmp_path / "b"))
    assert second["postprocess"]["sam"]["cache"] == {"hits": 1, "misses": 0}
    # different SAM settings are a different cache entry
    third = evaluate(compose(SAM_RUN + [f"paths.cache_dir={cache}", "postprocess.generator.points_per_side=3"],
                             output_dir=tmp_path / "c"))
    assert third["postprocess"]["sam"]["cache"] == {"hits": 0, "misses": 1}


def test_sam_refinement_changes_the_prediction_as_the_rule_says(voc_image):
    """With matching_thresh=0 every non-empty final mask becomes its SAM union: the label map is the
    one painted from the matched masks (checked against the rule applied by hand)."""
    import torch

    from car.methods.car.segmenter import SemanticCaR
    from car.postprocess.crf import paint_label_map

    rng = np.random.default_rng(0)
    h, w = voc_image.shape[:2]
    maps = rng.random((2, h, w)).astype(np.float32)
    sam_masks = np.stack([box(0, h // 2, 0, w, (h, w)), box(h // 2, h, 0, w, (h, w))])
    matcher = SamMatcher(iom_thres=0.6, min_pred_threshold=0.05, matching_thresh=0.0)
    seg = SemanticCaR(None, [], crf=None, sam_match=matcher)
    proposals = {"passes": [(maps, np.array([0.7, 0.9]), [3, 5])], "sam": sam_masks}
    got = seg.finish(voc_image, proposals)
    plain = SemanticCaR(None, [], crf=None).finish(voc_image, {"passes": proposals["passes"], "sam": None})
    from car.postprocess.crf import semantic_masks

    masks = semantic_masks(voc_image, maps, None, 1.0, True)
    expected = paint_label_map(matcher(masks, sam_masks), np.array([0.7, 0.9]), [3, 5], (h, w))
    assert np.array_equal(got, expected)
    assert not np.array_equal(got, plain)
    del torch


def test_car_plus_sam_referring_end_to_end_with_the_crf_worker_pool(tmp_path):
    """Referring mode: each expression's mask is matched before the vote; the RefCOCO threshold
    (0.5) is used; the matching also runs in the CRF worker processes."""
    from car.run.evaluation import evaluate

    require_shared_data()
    overrides = ["backbone=micro_random", f"paths.data_root={SHARED_DATA}", "dataset=refcoco", "dataset.limit=1",
                 "logger=none", "num_overlays=0", "trainer.enable_progress_bar=false", "postprocess=sam_micro_random",
                 f"paths.cache_dir={tmp_path / 'cache'}"]
    inline = evaluate(compose(overrides, output_dir=tmp_path / "a"))
    pooled = evaluate(compose(overrides + ["crf_workers=1"], output_dir=tmp_path / "b"))
    assert inline["postprocess"]["sam"]["iom_thres"] == 0.5 and inline["task"] == "referring"
    assert inline["published"] is None  # the paper has no RefCOCO + SAM number
    assert pooled["postprocess"]["sam"]["cache"] == {"hits": 1, "misses": 0}
    assert pooled["miou"] == inline["miou"] and pooled["oiou"] == inline["oiou"]
