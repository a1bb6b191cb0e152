"""The shared parts of the peer methods: PAMR, sliding windows, class names, the label decision."""

import pickle

import numpy as np
import pytest
import torch

from car.clip.text import TextEncoder
from car.errors import CarError
from car.methods.peers.decision import class_probabilities, label_map
from car.methods.peers.features import LastBlock, patch_logits
from car.methods.peers.pamr import affinity, pamr
from car.methods.peers.segmenter import Decision, InputGeometry, PeerSegmenter, Refinement
from car.methods.peers.sliding import (
    pad_to_patch,
    rescaled_size,
    sliding_logits,
    window_spans,
)
from car.methods.peers.text import (
    IMAGENET_TEMPLATES,
    class_embeddings,
    class_queries,
    read_names_file,
    resolve_templates,
)
from tests.conftest import require_shared_data

# --- PAMR ---------------------------------------------------------------------------------------------


def test_pamr_on_a_flat_image_averages_the_eight_neighbours():
    """Flat colour: every neighbour weighs 1/8. A lone 1 at the centre of a 3 x 3 mask moves to each
    of its 8 neighbours as 1/8 (replicated borders never reach back to the centre), the centre gets 0."""
    image = torch.full((1, 3, 3, 3), 0.5)
    mask = torch.zeros(1, 1, 3, 3)
    mask[0, 0, 1, 1] = 1.0
    out = pamr(image, mask, iterations=1, dilations=[1])
    expected = torch.full((3, 3), 1 / 8)
    expected[1, 1] = 0.0
    torch.testing.assert_close(out[0, 0], expected)


def test_pamr_keeps_masks_inside_their_colour_region():
    image = torch.zeros(1, 3, 6, 6)
    image[..., 3:] = 1.0  # left half black, right half white
    mask = torch.zeros(1, 2, 6, 6)
    mask[:, 0, :, :3] = 1.0  # class 0 on the left, class 1 on the right
    mask[:, 1, :, 3:] = 1.0
    out = pamr(image, mask, iterations=10, dilations=[1, 2])
    assert out[:, 0, :, 3:].max() < 1e-6 and out[:, 1, :, :3].max() < 1e-6  # nothing crosses the edge
    torch.testing.assert_close(out, mask, atol=1e-6, rtol=0)


def test_pamr_affinity_is_a_distribution_and_ignores_colour_normalisation():
    image = torch.rand(1, 3, 7, 9)
    weights = affinity(image, [1, 2, 4])
    assert weights.shape == (1, 24, 7, 9)
    torch.testing.assert_close(weights.sum(1), torch.ones(1, 7, 9))
    scale, shift = torch.tensor([2.0, 0.5, 4.0]).view(1, 3, 1, 1), torch.tensor([0.1, -3.0, 7.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(affinity(image * scale + shift, [1, 2, 4]), weights, rtol=1e-4, atol=1e-5)


# --- geometry ------------------------------------------------------------------------------------------


def test_resize_and_window_arithmetic():
    assert rescaled_size(375, 500, 336, 2048) == (336, 448)  # VOC landscape image, short side 336
    assert rescaled_size(100, 5000, 336, 2048) == (41, 2048)  # long side capped
    assert window_spans(336, 224, 112) == [(0, 224), (112, 336)]
    assert window_spans(448, 224, 112) == [(0, 224), (112, 336), (224, 448)]
    assert window_spans(500, 224, 112) == [(0, 224), (112, 336), (224, 448), (276, 500)]  # last one flush
    assert window_spans(200, 224, 112) == [(0, 200)]
    padded, top, left = pad_to_patch(torch.ones(1, 3, 50, 70), 16)
    assert padded.shape == (1, 3, 64, 80) and (top, left) == (7, 5)
    assert padded[0, 0, 7:57, 5:75].all() and padded.sum() == 3 * 50 * 70


def test_sliding_window_equals_single_pass_when_the_window_covers_the_image(micro_clip):
    torch.manual_seed(0)
    texts = torch.nn.functional.normalize(torch.randn(5, micro_clip.model.text_projection.shape[1]), dim=-1)
    last = LastBlock("csa", True, True)

    def logits_fn(x):
        return patch_logits(micro_clip.visual, x, texts, last)

    image = torch.randn(1, 3, 64, 96)
    single = sliding_logits(logits_fn, image, patch=16)
    for crop in (96, 128):  # the window covers the image: one window, the whole image
        torch.testing.assert_close(sliding_logits(logits_fn, image, 16, crop=crop, stride=32), single)
    windows = sliding_logits(logits_fn, image, 16, crop=64, stride=32)  # 2 windows overlap: averaged
    assert windows.shape == single.shape == (5, 64, 96) and not torch.allclose(windows, single)


def test_sliding_windows_average_overlaps():
    image = torch.zeros(1, 3, 40, 56)
    ones = sliding_logits(lambda x: torch.ones(1, 2, x.shape[-2] // 8, x.shape[-1] // 8), image, 8, crop=24, stride=8)
    torch.testing.assert_close(ones, torch.ones(2, 40, 56))  # every pixel divided by its own window count


# --- class names and templates ------------------------------------------------------------------------


def test_names_file_parsing_and_label_ids(tmp_path):
    (tmp_path / "cls_voc21.txt").write_text("sky, wall\nplane\nperson, person in shirt \n")
    assert read_names_file(tmp_path / "cls_voc21.txt") == [["sky", "wall"], ["plane"], ["person", "person in shirt"]]
    names = ["background", "aeroplane", "person"]
    q = class_queries("voc", names, str(tmp_path), ["ground"], query_background=True)
    assert q.queries == ["sky", "wall", "plane", "person", "person in shirt"]
    assert q.query_class == [0, 0, 1, 2, 2] and q.label_ids == [0, 1, 2] and q.has_background
    (tmp_path / "cls_voc20.txt").write_text("plane\nperson")
    q20 = class_queries("voc20", names, str(tmp_path), [], query_background=False)
    assert q20.label_ids == [1, 2] and not q20.has_background  # no background line: labels 1..K-1
    (tmp_path / "cls_context60.txt").write_text("a\nb\nc\nd\n")
    with pytest.raises(CarError, match="has 4 classes"):
        class_queries("context60", names, str(tmp_path), [], query_background=True)


def test_fallback_to_dataset_names_with_background_words(tmp_path):
    q = class_queries("voc", ["background", "cat", "dog"], str(tmp_path / "missing"), ["sky", "wall"], True)
    assert q.source == "dataset config" and q.queries == ["sky", "wall", "cat", "dog"] and q.label_ids == [0, 1, 2]
    shapes = class_queries("shapes", ["background", "circle"], None, ["stripes"], query_background=False)
    assert shapes.queries == ["circle"] and shapes.label_ids == [1]


def test_the_peers_real_name_files():
    root = require_shared_data("class_names") / "class_names"
    voc_names = ["background"] + [f"c{i}" for i in range(20)]
    sclip = class_queries("voc", voc_names, str(root / "sclip_naclip"), [], True)
    assert sclip.query_class.count(0) == 26 and sclip.queries[0] == "sky"  # background = 26 stuff words
    clear = class_queries("voc", voc_names, str(root / "clearclip"), [], True)
    assert clear.queries[0] == "background" and clear.query_class.count(0) == 1
    assert class_queries("voc20", voc_names, str(root / "sclip_naclip"), [], False).label_ids == list(range(1, 21))
    context = class_queries("context60", ["background"] + [f"c{i}" for i in range(59)], str(root / "sclip_naclip"),
                            [], True)
    assert context.queries[-1] == "wood"  # the file's trailing space is stripped


def test_templates_and_class_embeddings(micro_clip):
    assert len(IMAGENET_TEMPLATES) == 80 and all("{}" in t for t in IMAGENET_TEMPLATES)
    assert IMAGENET_TEMPLATES[0] == "a bad photo of a {}."
    with pytest.raises(CarError):
        resolve_templates(["no placeholder"])
    encoder = TextEncoder(micro_clip)
    emb = class_embeddings(encoder, ["cat", "dog"], ["a {}.", "the {}!"])
    manual = torch.nn.functional.normalize(encoder(["a cat.", "the cat!"]).mean(0), dim=0)
    assert emb.shape == (2, micro_clip.model.text_projection.shape[1])
    torch.testing.assert_close(emb[0], manual)


# --- decision ------------------------------------------------------------------------------------------


def test_label_decision_by_hand():
    # 3 queries: 0 -> background (label 0); 1, 2 -> synonyms of one class (label 5). Two pixels.
    logits = torch.tensor([[0.3, 0.1], [0.2, 0.1], [0.1, 0.1]]).view(3, 1, 2)
    scale = 10.0
    e = np.exp(scale * np.array([[0.3, 0.2, 0.1], [0.1, 0.1, 0.1]]))
    p = e / e.sum(1, keepdims=True)  # [pixel, query]
    expected = np.array([[p[0, 0], p[1, 0]], [max(p[0, 1], p[0, 2]), max(p[1, 1], p[1, 2])]])  # [class, pixel]
    probs = class_probabilities(logits, torch.tensor([0, 1, 1]), 2, scale)
    np.testing.assert_allclose(probs[:, 0].numpy(), expected, rtol=1e-5)
    labels = label_map(logits, [0, 1, 1], [0, 5], scale)
    assert labels.tolist() == [[0, 0]]  # pixel 0: bg 0.665 wins; pixel 1: a three-way tie goes to the first
    assert label_map(-logits, [0, 1, 1], [0, 5], scale).tolist() == [[5, 0]]
    assert label_map(-logits, [0, 1, 1], [0, 5], scale, prob_threshold=0.9).tolist() == [[0, 0]]


def test_area_threshold_drops_small_foreground_classes():
    # classes: background (0), A (1) wins 9 pixels, B (2) wins 1 pixel
    logits = torch.zeros(3, 1, 10)
    logits[1, 0, :9] = 1.0
    logits[2, 0, 9] = 1.0
    logits[0, 0, 9] = 0.9  # background second-best where B wins
    plain = label_map(logits, [0, 1, 2], [0, 1, 2], 10.0)
    assert plain[0, 9] == 2
    dropped = label_map(logits, [0, 1, 2], [0, 1, 2], 10.0, area_threshold=0.2)  # B: 1/10 <= 0.2 of fg
    assert dropped[0, 9] == 0 and (dropped[0, :9] == 1).all()


# --- the segmenter's two halves -----------------------------------------------------------------------


def test_segmenter_propose_finish_and_cpu_part(micro_clip):
    classes = class_queries("shapes", ["background", "circle", "square"], None, ["stripes", "dots"], True)
    seg = PeerSegmenter("naclip", micro_clip, LastBlock("kk_gaussian", False, False, 5.0), classes, ["a {}."],
                        InputGeometry(96, 2048, 64, 32), Decision(40.0, 0.1), Refinement(2, (1, 2)))
    image = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    logits, info = seg.propose({"image": image})
    assert logits.shape == (4, 96, 128) and logits.dtype == np.float32 and info["steps"] == [1]
    pred = seg.finish(image, logits)
    assert pred.shape == (60, 80) and set(np.unique(pred)) <= {0, 1, 2}
    worker = pickle.loads(pickle.dumps(seg.cpu_part()))
    assert worker.clip is None
    np.testing.assert_array_equal(worker.finish(image, logits), pred)
    again, _ = seg({"image": image})
    np.testing.assert_array_equal(again, pred)
