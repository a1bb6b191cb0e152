"""Tests for car.metrics against confusion matrices and IoUs computed by hand."""

import math

import numpy as np
import pytest
import torch

from car.metrics import SemanticIoU, protocol_name, segmentation_scores

IGN = 255


def confmat_of(pred, target, num_classes):
    """Confusion matrix of one update (lists are turned into int64 tensors)."""
    metric = SemanticIoU(num_classes)
    metric.update(torch.as_tensor(pred), torch.as_tensor(target))
    return metric.confmat


# --- Example 1: 3 classes, ignore pixels -----------------------------------------------------
# (gt, pred) pairs, row by row; the two ignored pixels are predicted 2 and 0 and must not count.
#   row 0: (0,0) (0,1) (1,1) (1,1)
#   row 1: (0,0) (2,2) (2,1) (1,1)
#   row 2: ign   ign   (2,2) (0,0)
EX1_TARGET = [[0, 0, 1, 1], [0, 2, 2, 1], [IGN, IGN, 2, 0]]
EX1_PRED = [[0, 1, 1, 1], [0, 2, 1, 1], [2, 0, 2, 0]]
EX1_CONFMAT = [
    [3, 1, 0],  # gt 0: 3 correct, 1 predicted as 1
    [0, 3, 0],  # gt 1: 3 correct
    [0, 1, 2],  # gt 2: 2 correct, 1 predicted as 1
]


def test_confmat_counts_and_ignores_255():
    assert confmat_of(EX1_PRED, EX1_TARGET, 3).tolist() == EX1_CONFMAT
    assert confmat_of(EX1_PRED, EX1_TARGET, 3).dtype == torch.int64


def test_scores_example1_all_classes():
    scores = segmentation_scores(torch.tensor(EX1_CONFMAT), class_names=["bg", "cat", "dog"])
    # IoU_bg  = 3 / (3 + FP 0 + FN 1) = 75
    # IoU_cat = 3 / (3 + FP 2 + FN 0) = 60
    # IoU_dog = 2 / (2 + FP 0 + FN 1) = 66.667
    assert scores["per_class_iou"] == pytest.approx({"bg": 75.0, "cat": 60.0, "dog": 200 / 3})
    assert scores["miou"] == pytest.approx((75 + 60 + 200 / 3) / 3)  # 67.222
    assert scores["pixel_accuracy"] == pytest.approx(80.0)  # 8 correct / 10 valid pixels
    assert scores["mean_accuracy"] == pytest.approx(100 * (3 / 4 + 3 / 3 + 2 / 3) / 3)  # 80.556
    assert scores["num_classes_averaged"] == 3
    assert scores["average"] == "gt_present" and scores["bg_protocol"] is None


def test_scores_accept_numpy_and_default_names():
    scores = segmentation_scores(np.array(EX1_CONFMAT))
    assert list(scores["per_class_iou"]) == ["0", "1", "2"]
    assert scores["miou"] == pytest.approx((75 + 60 + 200 / 3) / 3)


def test_confmat_reads_its_ignore_index():
    """Pixels whose target is `ignore_index` are not counted, whatever its value (here 0)."""
    metric = SemanticIoU(3, ignore_index=0)
    # (gt, pred): (0,0) (0,1) ignored; (1,2) and (2,1) counted
    metric.update(torch.tensor([[0, 1, 2, 1]]), torch.tensor([[0, 0, 1, 2]]))
    assert metric.confmat.tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 0]]
    with pytest.raises(ValueError, match=r"target values must be in \[0, 3\) or the ignore index 0, found \[255\]"):
        metric.update(torch.tensor(EX1_PRED), torch.tensor(EX1_TARGET))  # 255 is not ignored here


def test_confmat_refuses_out_of_range_targets_other_than_the_ignore_index():
    metric = SemanticIoU(3)  # ignore_index=255
    with pytest.raises(ValueError, match=r"target values .* found \[3, 7\]"):
        metric.update(torch.tensor([[0, 1, 2, 0]]), torch.tensor([[0, 3, 7, IGN]]))
    everything = SemanticIoU(3, ignore_index=None)
    everything.update(torch.tensor([[0, 1]]), torch.tensor([[0, 2]]))
    assert everything.confmat.tolist() == [[1, 0, 0], [0, 0, 0], [0, 1, 0]]


# --- Example 2: 4 classes; class 2 predicted but absent from GT; class 3 absent from both ------
#   target: [[1,1,1,1],[0,0,0,0]]   pred: [[1,1,2,2],[0,0,0,0]]
EX2_TARGET = [[1, 1, 1, 1], [0, 0, 0, 0]]
EX2_PRED = [[1, 1, 2, 2], [0, 0, 0, 0]]
EX2_CONFMAT = [
    [4, 0, 0, 0],
    [0, 2, 2, 0],
    [0, 0, 0, 0],
    [0, 0, 0, 0],
]


def test_gt_present_and_union_present_differ():
    confmat = confmat_of(EX2_PRED, EX2_TARGET, 4)
    assert confmat.tolist() == EX2_CONFMAT
    # IoU_0 = 4/4 = 100; IoU_1 = 2 / (2 + 0 + 2) = 50;
    # IoU_2 = 0 / (0 + FP 2 + 0) = 0 but class 2 is absent from the GT; class 3 is absent from both.
    car_rule = segmentation_scores(confmat, average="gt_present")
    assert car_rule["miou"] == pytest.approx(75.0)  # (100 + 50) / 2
    assert car_rule["num_classes_averaged"] == 2
    assert car_rule["per_class_iou"] == {"0": 100.0, "1": 50.0, "2": None, "3": None}

    mmseg_rule = segmentation_scores(confmat, average="union_present")
    assert mmseg_rule["miou"] == pytest.approx(50.0)  # (100 + 50 + 0) / 3
    assert mmseg_rule["num_classes_averaged"] == 3
    assert mmseg_rule["per_class_iou"] == {"0": 100.0, "1": 50.0, "2": 0.0, "3": None}

    for scores in (car_rule, mmseg_rule):  # accuracies do not depend on the averaging rule
        assert scores["pixel_accuracy"] == pytest.approx(75.0)  # 6 / 8
        assert scores["mean_accuracy"] == pytest.approx(75.0)  # (4/4 + 2/4) / 2


# --- Example 3: background protocols ---------------------------------------------------------
#   (gt,pred): (0,0) (0,1) (0,2) (1,1) / (1,0) (1,1) (2,2) (2,0)
EX3_TARGET = [[0, 0, 0, 1], [1, 1, 2, 2]]
EX3_PRED = [[0, 1, 2, 1], [0, 1, 2, 0]]
EX3_CONFMAT = [
    [1, 1, 1],  # gt background: predicted 0, 1, 2 once each
    [1, 2, 0],  # gt 1: 2 correct, 1 predicted as background
    [1, 0, 1],  # gt 2: 1 correct, 1 predicted as background
]


def test_bg_protocols_differ():
    confmat = confmat_of(EX3_PRED, EX3_TARGET, 3)
    assert confmat.tolist() == EX3_CONFMAT

    # None: IoU_0 = 1/(1+2+2) = 20, IoU_1 = 2/(2+1+1) = 50, IoU_2 = 1/(1+1+1) = 33.333
    plain = segmentation_scores(confmat, bg_protocol=None)
    assert plain["per_class_iou"] == pytest.approx({"0": 20.0, "1": 50.0, "2": 100 / 3})
    assert plain["miou"] == pytest.approx((20 + 50 + 100 / 3) / 3)  # 34.444
    assert plain["pixel_accuracy"] == pytest.approx(100 * 4 / 8)

    # "car": drop row and column 0 -> [[2,0],[0,1]]: IoU_1 = 2/2 = 100, IoU_2 = 1/1 = 100
    car = segmentation_scores(confmat, bg_protocol="car")
    assert car["per_class_iou"] == pytest.approx({"1": 100.0, "2": 100.0})
    assert car["miou"] == pytest.approx(100.0)
    assert car["pixel_accuracy"] == pytest.approx(100.0)  # 3 / 3
    assert car["num_classes_averaged"] == 2

    # "standard": drop row 0 only -> [[1,2,0],[1,0,1]]; predicted-background is a miss:
    # IoU_1 = 2 / (2 + FP 0 + FN 1) = 66.667, IoU_2 = 1 / (1 + FP 0 + FN 1) = 50
    standard = segmentation_scores(confmat, bg_protocol="standard")
    assert standard["per_class_iou"] == pytest.approx({"1": 200 / 3, "2": 50.0})
    assert standard["miou"] == pytest.approx((200 / 3 + 50) / 2)  # 58.333
    assert standard["pixel_accuracy"] == pytest.approx(60.0)  # 3 / 5
    assert standard["mean_accuracy"] == pytest.approx(100 * (2 / 3 + 1 / 2) / 2)
    assert standard["bg_protocol"] == "standard"


def test_protocol_names_tell_the_two_standard_meanings_apart():
    assert protocol_name(None, True) == "with_background" and protocol_name("car", True) == "car"
    assert protocol_name("standard", predicts_background=False) == "standard_no_bg"  # peers' protocol
    assert protocol_name("standard", predicts_background=True) == "standard_bg_miss"  # CaR's bg channel
    with pytest.raises(ValueError, match="bg_protocol"):
        protocol_name("voc", False)


def test_bg_protocol_keeps_class_names_aligned():
    scores = segmentation_scores(torch.tensor(EX3_CONFMAT), bg_protocol="car", class_names=["bg", "a", "b"])
    assert list(scores["per_class_iou"]) == ["a", "b"]


# --- Dataset-wide accumulation ---------------------------------------------------------------
# Batch A: 4 pixels of class 1, all correct          -> [[0,0],[0,4]]  mIoU = 100 (class 1 only)
# Batch B: gt [0,0,0,1], pred all 0                  -> [[3,0],[1,0]]  mIoU = (75 + 0) / 2 = 37.5
# Mean of per-batch mIoUs = 68.75, but the dataset-wide matrix [[3,0],[1,4]] gives
# IoU_0 = 3/(3+1) = 75, IoU_1 = 4/(4+1) = 80 -> mIoU = 77.5.
BATCH_A = (torch.tensor([[[1, 1], [1, 1]]]), torch.tensor([[[1, 1], [1, 1]]]))  # (pred, target) [1,2,2]
BATCH_B = (torch.tensor([[[0, 0], [0, 0]]]), torch.tensor([[[0, 0], [0, 1]]]))


def test_accumulation_is_dataset_wide_not_per_batch_mean():
    metric = SemanticIoU(num_classes=2)
    per_batch_mious = []
    for pred, target in (BATCH_A, BATCH_B):
        metric.update(pred, target)
        per_batch_mious.append(segmentation_scores(confmat_of(pred, target, 2))["miou"])
    assert per_batch_mious == pytest.approx([100.0, 37.5])

    assert metric.confmat.tolist() == [[3, 0], [1, 4]]
    assert metric.compute()["miou"] == pytest.approx(77.5)  # the metric's own scores, from the whole matrix
    assert sum(per_batch_mious) / 2 == pytest.approx(68.75)  # the wrong number

    concatenated = SemanticIoU(num_classes=2)
    concatenated.update(torch.cat([BATCH_A[0], BATCH_B[0]]), torch.cat([BATCH_A[1], BATCH_B[1]]))
    assert torch.equal(concatenated.confmat, metric.confmat)


def test_reset_clears_the_matrix():
    metric = SemanticIoU(num_classes=3)
    metric.update(torch.tensor(EX1_PRED), torch.tensor(EX1_TARGET))
    metric.reset()
    assert metric.confmat.tolist() == [[0] * 3] * 3
    metric.update(torch.tensor(EX1_PRED), torch.tensor(EX1_TARGET))
    assert metric.confmat.tolist() == EX1_CONFMAT


def test_merging_two_rank_states_equals_one_metric():
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, 4, (6, 5, 7), generator=generator)  # [B,H,W]
    target[:, 0, :] = IGN
    pred = torch.randint(0, 4, (6, 5, 7), generator=generator)

    whole = SemanticIoU(num_classes=4)
    whole.update(pred, target)
    rank0, rank1 = SemanticIoU(num_classes=4), SemanticIoU(num_classes=4)
    rank0.update(pred[:2], target[:2])
    rank1.update(pred[2:], target[2:])

    assert torch.equal(rank0.confmat + rank1.confmat, whole.confmat)  # what DDP's "sum" reduce does
    rank0.merge_state(rank1)
    assert rank0.compute() == whole.compute()
    assert int(whole.confmat.sum()) == 6 * 4 * 7  # every non-ignored pixel counted once


def test_matches_brute_force_count():
    generator = torch.Generator().manual_seed(1)
    target = torch.randint(0, 6, (3, 4, 5), generator=generator)
    target[target == 5] = IGN
    pred = torch.randint(0, 5, (3, 4, 5), generator=generator)
    expected = torch.zeros(5, 5, dtype=torch.int64)
    for gt, pr in zip(target.flatten().tolist(), pred.flatten().tolist()):
        if gt != IGN:
            expected[gt, pr] += 1
    assert torch.equal(confmat_of(pred, target, 5), expected)


# --- Errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize("bad_value", [3, -1])
def test_prediction_out_of_range_raises(bad_value):
    metric = SemanticIoU(num_classes=3)
    with pytest.raises(ValueError, match="prediction values"):
        metric.update(torch.tensor([[0, bad_value]]), torch.tensor([[0, 1]]))


def test_shape_mismatch_and_float_inputs_raise():
    metric = SemanticIoU(num_classes=3)
    with pytest.raises(ValueError, match="same shape"):
        metric.update(torch.zeros(2, 3, dtype=torch.long), torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        metric.update(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long))


def test_bad_score_arguments_raise():
    with pytest.raises(ValueError, match="average"):
        segmentation_scores(torch.tensor(EX1_CONFMAT), average="mean")
    with pytest.raises(ValueError, match="bg_protocol"):
        segmentation_scores(torch.tensor(EX1_CONFMAT), bg_protocol="voc")
    with pytest.raises(ValueError, match="class names"):
        segmentation_scores(torch.tensor(EX1_CONFMAT), class_names=["a", "b"])


def test_empty_matrix_gives_nan():
    scores = segmentation_scores(torch.zeros(3, 3, dtype=torch.int64))
    assert math.isnan(scores["miou"]) and math.isnan(scores["pixel_accuracy"])
    assert scores["num_classes_averaged"] == 0
