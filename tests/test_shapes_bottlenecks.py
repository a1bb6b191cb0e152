"""scripts/shapes_bottlenecks.py: where CaR loses on the shapes world (car/assets/tiny_clip.md)."""

import json

import numpy as np

from tests.conftest import REPO, load_script

sb = load_script(REPO / "scripts" / "shapes_bottlenecks.py", "shapes_bottlenecks")


def test_token_coverage_map_by_hand():
    mask = np.zeros((16, 16), bool)
    mask[0:8, 0:4] = True  # half of the top-left 8x8 token
    m = sb.token_coverage_map(mask)
    assert m.shape == (16, 16) and m.dtype == np.float32
    assert m[0, 0] == 1.0 and m[15, 15] == 0.0  # the covered token peaks, the far one is zero
    assert m[0, 0] > m[0, 12] and m[0, 0] > m[12, 0]  # bilinear fall-off away from it


def test_ideal_maps_bound_and_first_step(tmp_path):
    out = tmp_path / "b.json"
    first = sb.main(["--num-images", "4", "--out", str(out)])
    assert json.loads(out.read_text()) == first
    ideal = first["ideal_maps"]
    # pixel-exact maps of the true classes: the CRF may move a boundary pixel, nothing more
    assert ideal["pixel_no_crf"] == 100.0 and ideal["pixel_crf"] > 95
    # token-level maps blur the boundaries; CaR's CRF recovers them from the image
    assert ideal["token_crf"] > ideal["token_no_crf"] and ideal["token_crf"] > 85
    step = first["first_step"]
    assert step["present_queries"] >= 4 and step["present_queries"] + step["absent_queries"] == 4 * 10
    shares = [step[f"present_argmax_{k}"] for k in ("self", "other_present", "absent")]
    assert abs(sum(shares) - 1.0) < 1e-6  # the arg-max is one of the three, exactly
    assert 0.0 < step["present_mask_area"] < 1.0 and 0.0 <= step["present_mask_iou"] <= 1.0
    assert 0.0 <= step["absent_kept"] <= 1.0 and step["prompts"] == ["circle", "blur"]
    assert 1.0 <= step["final_queries_per_image"] <= 10.0  # CaR keeps at least one query per image
    assert 0.0 <= step["final_precision"] <= 1.0 and 0.0 <= step["final_recall"] <= 1.0
    assert sb.main(["--num-images", "4"]) == first  # deterministic
