"""The DAVIS measures (car/metrics/davis): J, F, the per-object statistics and the two protocols,
on hand-made masks, and against the official toolkit's output on real masks (../shared/golden/davis)."""

from __future__ import annotations

import numpy as np
import pytest

from car.metrics.davis import DavisMeasures, boundary_measure, object_statistics, region_similarity, seg2bmap
from car.metrics.davis.measures import boundary_tolerance, disk
from car.metrics.davis.pairs import pairwise_scores


def test_region_similarity_is_void_aware_iou_with_empty_union_one():
    gt = np.zeros((4, 4), bool)
    gt[:2, :2] = True  # 4 px
    pred = np.zeros((4, 4), bool)
    pred[:2, :3] = True  # 6 px, 4 shared
    assert region_similarity(gt, pred) == pytest.approx(4 / 6)
    void = np.zeros((4, 4), bool)
    void[:, 2] = True  # hides the 2 extra predicted pixels
    assert region_similarity(gt, pred, void) == 1.0
    assert region_similarity(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0  # empty union
    assert region_similarity(gt, np.zeros((4, 4))) == 0.0
    assert region_similarity(gt, gt, np.ones((4, 4))) == 1.0  # everything void: empty union
    np.testing.assert_array_equal(region_similarity(np.stack([gt, gt]), np.stack([pred, gt])), [4 / 6, 1.0])


def test_seg2bmap_marks_pixels_differing_from_east_south_or_south_east():
    mask = np.zeros((5, 5), bool)
    mask[1:3, 1:3] = True
    expected = np.array([[1, 1, 1, 0, 0],  # (0, 0): its south-east neighbour is inside
                         [1, 0, 1, 0, 0],
                         [1, 1, 1, 0, 0],
                         [0, 0, 0, 0, 0],
                         [0, 0, 0, 0, 0]], bool)
    np.testing.assert_array_equal(seg2bmap(mask), expected)
    full = np.ones((3, 4), bool)  # nothing differs inside; last row / column compare inwards only
    assert not seg2bmap(full).any()
    edge = np.zeros((3, 4), bool)
    edge[2, 1] = True  # on the last row: differs from its east neighbour and from its west one's east
    np.testing.assert_array_equal(seg2bmap(edge), [[0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0]])


def test_boundary_tolerance_and_disk():
    assert boundary_tolerance(480, 854) == 8  # ceil(0.008 * 979.6)
    assert boundary_tolerance(100, 100) == 2  # ceil(1.13)
    kernel = disk(2)
    assert kernel.shape == (5, 5) and kernel.sum() == 13 and kernel[0, 0] == 0 and kernel[0, 2] == 1


def test_boundary_measure_tolerance_and_empty_cases():
    gt = np.zeros((480, 854), bool)
    gt[100:200, 100:300] = True
    near = np.roll(gt, 8, axis=1)  # every boundary pixel within 8 px: perfect F
    far = np.roll(gt, 40, axis=0)
    assert boundary_measure(gt, near) == 1.0
    assert boundary_measure(gt, np.roll(gt, 9, axis=1)) < 1.0  # the vertical edges now fall outside
    assert 0.0 < boundary_measure(gt, far) < 0.6
    empty = np.zeros_like(gt)
    assert boundary_measure(empty, empty) == 1.0
    assert boundary_measure(gt, empty) == 0.0 and boundary_measure(empty, gt) == 0.0
    void = np.zeros_like(gt)
    void[:, 90:] = True  # the ground truth is all void: its boundary is empty, the prediction's too
    assert boundary_measure(gt, near, void) == 1.0


def test_object_statistics_mean_recall_decay():
    values = np.array([1, 1, 1, 1, 0, 0, 0, 0.6])
    mean, recall, decay = object_statistics(values)
    assert mean == pytest.approx(4.6 / 8) and recall == pytest.approx(5 / 8)
    # bin ends round(linspace(1, 8, 5)) = 1, 3, 5, 6, 8: first bin frames 1-3, last bin frames 6-8
    assert decay == pytest.approx(1.0 - 0.6 / 3)
    assert object_statistics(np.array([0.2]))[2] == 0.0


def _random_labels(rng, frames, height, width, count):
    """[T, H, W] uint8 label maps of `count` rectangles and discs, some on the image border."""
    out = np.zeros((frames, height, width), np.uint8)
    yy, xx = np.mgrid[:height, :width]
    for t in range(frames):
        for k in range(1, count + 1):
            if rng.random() < 0.15:
                continue  # absent in this frame
            cy, cx = rng.integers(-5, height + 5), rng.integers(-5, width + 5)
            ry, rx = rng.integers(1, height // 2), rng.integers(1, width // 2)
            shape = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1 if k % 2 else \
                (abs(yy - cy) < ry) & (abs(xx - cx) < rx)
            out[t][shape] = k
    return out


@pytest.mark.parametrize("seed", range(4))
def test_pairwise_scores_equal_the_plain_measures_on_every_pair(seed):
    rng = np.random.default_rng(seed)
    gt = _random_labels(rng, 3, 60, 90, 3)
    pred = _random_labels(rng, 3, 60, 90, 4)
    void = rng.random(gt.shape) < 0.02
    void[:, 10:14, :] = True
    j, f = pairwise_scores(gt, pred, 3, 4, void)
    assert j.shape == f.shape == (4, 3, 3)
    for p in range(4):
        for g in range(3):
            np.testing.assert_array_equal(j[p, g], region_similarity(gt == g + 1, pred == p + 1, void))
            np.testing.assert_array_equal(f[p, g], boundary_measure(gt == g + 1, pred == p + 1, void))


def _sequence(frames=6, size=(40, 60)):
    """Ground truth with objects 1 and 2 (a void band), [T, H, W]."""
    gt = np.zeros((frames, *size), np.uint8)
    gt[:, 5:20, 5:25] = 1
    gt[:, 22:35, 30:55] = 2
    gt[:, 0, :] = 255
    return gt


def test_unsupervised_assigns_predicted_to_ground_truth_objects():
    gt = _sequence()
    pred = np.where(gt == 1, 3, np.where(gt == 2, 1, 0)).astype(np.uint8)  # ids 3 and 1; id 2 is empty
    measures = DavisMeasures("unsupervised")
    measures.process("seq", gt, pred)
    scores = measures.compute()
    assert scores["J&F-Mean"] == 1.0 and scores["J-Recall"] == 1.0 and scores["F-Decay"] == 0.0
    assert sorted(scores["per_object"]) == ["seq_1", "seq_2"] and scores["num_objects"] == 2
    assert scores["per_sequence"] == {"seq": {"J&F": 1.0, "J": 1.0, "F": 1.0}}


def test_unsupervised_missing_object_is_empty_and_ids_are_limited():
    gt = _sequence()
    pred = np.where(gt == 2, 1, 0).astype(np.uint8)  # only one predicted object
    measures = DavisMeasures("unsupervised")
    measures.process("seq", gt, pred)
    scores = measures.compute()
    assert scores["J-Mean"] == 0.5 and scores["F-Mean"] == 0.5  # one perfect, one empty (J 0, F 0)
    too_many = pred.copy()
    too_many[0, 39, 59] = 21
    with pytest.raises(ValueError, match="seq2.*id 21.*at most 20"):
        DavisMeasures("unsupervised").process("seq2", gt, too_many)
    DavisMeasures("unsupervised", max_objects=21).process("seq2", gt, too_many)


def test_semi_supervised_skips_first_and_last_frames_and_ignores_void():
    gt = _sequence()
    pred = np.where(gt == 255, 0, gt).astype(np.uint8)
    pred[0] = 0
    pred[-1] = 2  # first and last frames are not scored
    measures = DavisMeasures("semi-supervised")
    measures.process("seq", gt, pred)
    assert measures.compute()["J&F-Mean"] == 1.0
    assert len(measures.per_frame["seq_1"]["J"]) == 4
    covering_void = pred.copy()
    covering_void[:, 0, 5:25] = 1  # the void row, predicted as object 1: counts as a false positive
    measures = DavisMeasures("semi-supervised")
    measures.process("seq", gt, covering_void)
    assert measures.per_frame["seq_1"]["J"][0] == pytest.approx(300 / 320)
    unsupervised = DavisMeasures("unsupervised")
    unsupervised.process("seq", gt, covering_void)
    assert unsupervised.per_frame["seq_1"]["J"][1] == 1.0  # the unsupervised task excludes void


def test_semi_supervised_ids_are_the_ground_truth_ids():
    gt = _sequence()
    swapped = np.where(gt == 1, 2, np.where(gt == 2, 1, 0)).astype(np.uint8)
    measures = DavisMeasures("semi-supervised")
    measures.process("seq", gt, swapped)
    assert measures.compute()["J-Mean"] == 0.0  # no matching in this task
    extra = swapped.copy()
    extra[2, 39, 59] = 3
    with pytest.raises(ValueError, match="id 3.*2 ground-truth objects"):
        DavisMeasures("semi-supervised").process("seq", gt, extra)
    with pytest.raises(ValueError, match="at least 3 frames"):
        DavisMeasures("semi-supervised").process("short", gt[:2], swapped[:2])


def test_number_of_objects_comes_from_the_first_frame_and_compute_needs_objects():
    gt = _sequence()
    gt[1:, 36:39, 0:5] = 3  # appears after the first frame: not an object
    pred = np.where(gt == 255, 0, gt).astype(np.uint8)
    measures = DavisMeasures()
    measures.process("seq", gt, pred)
    assert measures.compute()["num_objects"] == 2
    with pytest.raises(ValueError, match="no DAVIS object"):
        DavisMeasures().compute()
    with pytest.raises(ValueError, match="same size"):
        DavisMeasures().process("seq", gt, pred[:, :10])
    with pytest.raises(ValueError, match="unknown|one of"):
        DavisMeasures("supervised")
    measures.reset()
    assert measures.sequences == [] and measures.per_frame == {}
