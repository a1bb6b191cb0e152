import numpy as np
import pytest

from car.data.shapes import CLASSES, IGNORE_INDEX, TEXTURES, ShapesDataset, render_scene, scene_seed


def test_api_constants():
    assert len(CLASSES) >= 8 and len(set(CLASSES)) == len(CLASSES)
    assert len(TEXTURES) >= 6 and not set(CLASSES) & set(TEXTURES)


def test_render_shapes_and_dtypes():
    sc = render_scene(3, size=64)
    assert sc["image"].shape == (64, 64, 3) and sc["image"].dtype == np.uint8
    assert sc["target"].shape == (64, 64) and sc["target"].dtype == np.int64
    assert sc["texture"] in TEXTURES
    assert len(sc["objects"]) >= 1
    for cls, m in sc["objects"]:
        assert isinstance(cls, int) and 1 <= cls <= len(CLASSES)
        assert m.dtype == np.bool_ and m.shape == (64, 64) and m.any()
    sc96 = render_scene(np.random.SeedSequence(3), size=96)
    assert sc96["image"].shape == (96, 96, 3) and sc96["target"].shape == (96, 96)


def test_determinism():
    a, b = render_scene(np.random.SeedSequence([0, 1, 5])), render_scene(np.random.SeedSequence([0, 1, 5]))
    assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["target"], b["target"])
    assert a["texture"] == b["texture"]
    c = render_scene(np.random.SeedSequence([0, 1, 6]))
    assert not np.array_equal(a["image"], c["image"])
    assert np.array_equal(render_scene(11)["image"], render_scene(11)["image"])
    d1, d2 = ShapesDataset("val", 4, seed=0), ShapesDataset("val", 4, seed=0)
    assert np.array_equal(d1[2]["image"], d2[2]["image"])
    assert not np.array_equal(ShapesDataset("val", 4, seed=1)[2]["image"], d1[2]["image"])


def test_labels_and_ignore_band():
    ds = ShapesDataset("val", num_images=40)
    seen = set()
    for i in range(len(ds)):
        t = ds[i]["target"]
        vals = set(np.unique(t).tolist())
        assert vals <= set(range(len(CLASSES) + 1)) | {IGNORE_INDEX}
        assert IGNORE_INDEX in vals  # every scene has at least one object border
        seen |= vals - {0, IGNORE_INDEX}
    assert len(seen) >= 8


def test_ignore_band_on_borders():
    sc = render_scene(np.random.SeedSequence([0, 1, 0]), num_objects=1)
    t = sc["target"]
    cls, m = sc["objects"][0]
    assert (t == cls).any() and (t == 0).any()
    band = t == IGNORE_INDEX
    # the band covers the object's outline: every object pixel touching the outside is ignored
    import cv2

    outline = m & ~cv2.erode(m.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    assert band[outline].all()
    # and it is thin (about 2 px): far from the boundary nothing is ignored
    far = cv2.distanceTransform((~band).astype(np.uint8), cv2.DIST_L2, 3)
    assert band.sum() < 0.5 * m.sum() + 4 * outline.sum()
    # object interior keeps its class, labels never mix classes and background inside objects
    assert (t[m & ~band] == cls).all() and (t[~m & ~band] == 0).all()
    assert far.max() > 3


def test_visible_masks_match_target():
    sc = render_scene(np.random.SeedSequence([0, 1, 7]), num_objects=4)
    t = sc["target"]
    for cls, m in sc["objects"]:
        assert ((t[m] == cls) | (t[m] == IGNORE_INDEX)).all()
    union = np.zeros_like(t, bool)
    for _c, m in sc["objects"]:
        assert not (union & m).any()  # visible masks are disjoint
        union |= m


def test_splits_differ_and_items():
    tr, va = ShapesDataset("train", 3), ShapesDataset("val", 3)
    assert not np.array_equal(tr[0]["image"], va[0]["image"])
    item = va[1]
    assert item["image_id"] == "shapes_val_00001"
    assert set(item) == {"image", "target", "image_id"}
    assert len(va) == 3
    with pytest.raises(IndexError):
        va[3]
    assert np.array_equal(va[0]["image"], render_scene(scene_seed("val", 0, 0))["image"])
    with pytest.raises(ValueError):
        ShapesDataset("nope")


def test_texture_and_count_can_be_forced():
    for tex in TEXTURES:
        sc = render_scene(1, texture=tex, num_objects=2)
        assert sc["texture"] == tex and 1 <= len(sc["objects"]) <= 2
