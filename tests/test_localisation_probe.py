"""scripts/localisation_probe.py: the gradCAM / token localisation diagnostic of car/assets/tiny_clip.md."""

import json

import numpy as np

from tests.conftest import REPO, load_script

lp = load_script(REPO / "scripts" / "localisation_probe.py", "localisation_probe")


def test_peak_inside_reads_the_argmax_after_resizing_to_the_mask():
    mask = np.zeros((64, 64), bool)
    mask[40:56, 8:24] = True  # object in the lower left
    score = np.zeros((8, 8), np.float32)  # a patch grid, 8 px per patch
    score[6, 2] = 1.0  # patch covering rows 48..55, cols 16..23: inside
    assert lp.peak_inside(score, mask)
    score[6, 2], score[1, 6] = 0.0, 1.0  # upper right: outside
    assert not lp.peak_inside(score, mask)


def test_iou():
    a = np.zeros((4, 4), bool)
    b = a.copy()
    a[:2], b[1:3] = True, True
    assert lp.iou(a, b) == 4 / 12 and lp.iou(a, a) == 1.0 and lp.iou(~a & a, ~a & a) == 0.0


def test_probe_runs_on_the_committed_tiny_clip_and_is_deterministic(tmp_path):
    out = tmp_path / "probe.json"
    first = lp.main(["--num-images", "3", "--out", str(out)])
    assert json.loads(out.read_text()) == first
    assert first["objects"] >= 3 and first["images"] == 3 and first["weights"].endswith("tiny_clip.pt")
    rates = [first[k] for k in ("gradcam_peak_inside", "refined_peak_inside", "gradcam_iou", "refined_iou", "chance")]
    assert all(0.0 <= r <= 1.0 for r in rates + list(first["token_peak_inside"].values()))
    assert 0.0 < first["chance"] < 0.5  # objects cover part of the image
    assert set(first["token_peak_inside"]) == {"3", "4"}  # depth-1 (gradCAM's activation) and depth
    assert lp.main(["--num-images", "3"]) == first
