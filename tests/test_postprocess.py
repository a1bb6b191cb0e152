"""Dense CRF and label maps (CAR_SPEC §7)."""

import numpy as np

from car.postprocess.crf import DenseCRF, binary_mask, crf_image, paint_label_map, semantic_masks


def test_crf_image_wraps_like_the_official_c_cast():
    image = np.array([[[0, 0, 0], [255, 255, 255]]], np.uint8)  # RGB
    out = crf_image(image, "official_wrapped")
    # black: BGR - mean = (-104.008, -116.669, -122.675) -> trunc (-104, -116, -122) -> mod 256
    assert out[0, 0].tolist() == [152, 140, 134]
    # white: (150.992, 138.331, 132.325) -> (150, 138, 132)
    assert out[0, 1].tolist() == [150, 138, 132]
    assert out.flags["C_CONTIGUOUS"] and out.dtype == np.uint8
    assert (crf_image(image, "rgb") == image).all()


def edge_scene():
    """Left half dark, right half bright; the true object is the right half."""
    image = np.zeros((40, 60, 3), np.uint8)
    image[:, 30:] = 230
    truth = np.zeros((40, 60), bool)
    truth[:, 30:] = True
    rng = np.random.default_rng(0)
    soft = np.clip(truth * 0.6 + 0.2 + rng.normal(0, 0.25, truth.shape), 0, 1).astype(np.float32)
    soft[:, 24:30] = 0.7  # the proposal spills over the edge by 6 px
    return image, truth, soft


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_crf_moves_noisy_mask_to_image_edge():
    image, truth, soft = edge_scene()
    plain = binary_mask(image, soft, crf=None)
    refined = binary_mask(image, soft, crf=DenseCRF(image_mode="rgb"))
    assert iou(refined, truth) > iou(plain, truth) + 0.1
    assert iou(refined, truth) > 0.95


def test_semantic_masks_are_disjoint_and_background_optional():
    image, truth, soft = edge_scene()
    maps = np.stack([soft, 1 - soft]).astype(np.float32) * 0.8
    masks = semantic_masks(image, maps, crf=DenseCRF(), background=True)
    assert masks.shape == (2, 40, 60) and not (masks[0] & masks[1]).any()
    no_bg = semantic_masks(image, maps, crf=None, background=False)
    assert (no_bg[0] | no_bg[1]).all()  # every pixel gets a query


def test_paint_label_map_higher_score_wins_and_pruned_skipped():
    masks = np.zeros((3, 2, 2), bool)
    masks[0, 0, :] = True
    masks[1, :, 0] = True
    masks[2] = True
    out = paint_label_map(masks, np.array([0.9, 0.5, 0.0]), [7, 3, 5], (2, 2))
    assert out.tolist() == [[7, 7], [3, 0]]
