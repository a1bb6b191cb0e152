import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import load_script

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "train_tiny_clip.py"


def _load():
    return load_script(SCRIPT, "train_tiny_clip")


def test_model_config_is_standard_open_clip():
    cfg = json.loads((ROOT / "car/clip/model_configs/car-tiny-vit.json").read_text())
    assert {"embed_dim", "vision_cfg", "text_cfg"} <= set(cfg)
    T = _load()
    model, tok = T.build_model()
    v = model.visual
    for name in ["conv1", "class_embedding", "positional_embedding", "ln_pre", "ln_post", "proj"]:
        assert hasattr(v, name)
    assert isinstance(v.conv1, torch.nn.Sequential)  # the conv stem declared in car-tiny-vit.stem.json
    blk = v.transformer.resblocks[-1]
    assert hasattr(blk.attn, "in_proj_weight") and hasattr(blk, "ln_1") and hasattr(blk, "mlp")
    assert tok(["a clean origami star."]).shape == (1, cfg["text_cfg"]["context_length"])
    # our path (c) equals open_clip's own encode_image
    x = torch.randn(2, 3, cfg["vision_cfg"]["image_size"], cfg["vision_cfg"]["image_size"])
    with torch.no_grad():
        cls_l, _, _ = T.visual_paths(v, x)
        ref = model.encode_image(x, normalize=True)
    assert torch.allclose(cls_l, ref, atol=1e-5)


def test_batches_are_deterministic():
    T = _load()
    a, b = T.make_batch(0, 3, 4, 64), T.make_batch(0, 3, 4, 64)
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    c = T.make_batch(0, 4, 4, 64)
    assert not torch.equal(a[0], c[0])
    raw, multi, prompted, ptarget = a
    assert raw.shape == prompted.shape == (4, 3, 64, 64)
    assert multi.shape == (4, len(T.LABELS)) and (multi.sum(1) >= 2).all()  # >=1 class + texture


def test_prompt_draws_red_ellipse():
    T = _load()
    img = np.full((64, 64, 3), 128, np.uint8)
    m = np.zeros((64, 64), bool)
    m[20:40, 10:30] = True
    out = T.apply_prompt(img, m, "circle")
    red = (out[..., 0] == 255) & (out[..., 1] == 0) & (out[..., 2] == 0)
    assert red.sum() > 20 and not red[28:32, 18:22].any()


def test_token_labels_by_hand():
    T = _load()
    import tiny_clip_data as D

    target = np.zeros((16, 16), np.int64)  # a 2 x 2 token grid of 8-px cells
    target[:8, :8] = 3  # class id 3 -> index 2
    target[:8, 8:] = 255  # ignore band
    target[8:, :4] = 5  # half of the cell: mixed -> ignored
    labels = D.token_labels(target, "dots", grid=2)
    assert labels.tolist() == [2, -100, -100, len(T.LABELS) - len(D.TEXTURES) + D.TEXTURES.index("dots")]
    batch = T.make_batch_ce(0, 0, 2, 64)
    assert batch[5].shape == (2, 3, 64, 64) and batch[6].shape == (2, 64)
    assert ((batch[6] >= -100) & (batch[6] < len(T.LABELS))).all() and (batch[6] >= 0).any()


def test_background_disc_prompts():
    """--neg-prompt-p: prompted background discs labelled with the scene's texture (index C + t);
    with the option off the batches are exactly those of earlier runs."""
    T = _load()
    import tiny_clip_data as D

    target = np.zeros((64, 64), np.int64)
    target[:, :32] = 4  # the left half is an object
    rng = np.random.default_rng(0)
    for _ in range(20):
        disc = D.background_disc(target, rng)
        assert disc is not None and disc.sum() >= 12 and (target[disc] != 0).mean() <= 0.15
    assert D.background_disc(np.full((64, 64), 3), rng) is None  # no background: no negative
    off = T.make_batch_ce(0, 0, 6, 64)
    for x, y in zip(off, T.make_batch_ce(0, 0, 6, 64, neg_prompt_p=0.0)):
        assert torch.equal(x, y)
    on = T.make_batch_ce(0, 0, 6, 64, neg_prompt_p=1.0)
    assert torch.equal(on[0], off[0])  # single-object scenes unchanged
    assert (on[4] >= D.C).sum() >= 4 and (on[4] < len(T.LABELS)).all()  # mostly texture labels
    torch.manual_seed(0)
    model, tok = T.build_model()
    loss, parts = T.compute_loss_ce(model, tok, None, on, np.random.default_rng(0), prompt_textures=True)
    assert torch.isfinite(loss) and parts["prompt"] > 0
    with pytest.raises(IndexError):  # texture labels need the texture words in the prompted loss
        T.compute_loss_ce(model, tok, None, on, np.random.default_rng(0), prompt_textures=False)


def test_loose_disc_prompts():
    """--loose-prompt-p: object prompts on a loose disc around the object, labelled with it."""
    T = _load()
    import tiny_clip_data as D

    obj = np.zeros((64, 64), bool)
    obj[20:30, 24:34] = True  # a 10 x 10 object
    rng = np.random.default_rng(0)
    for _ in range(20):
        disc = D.loose_disc(obj, rng)
        assert (disc & obj).sum() == obj.sum()  # always holds the whole object
        assert obj.sum() <= disc.sum() <= 1.15 * 4 * obj.sum() + obj.sum()  # radius <= 2x the object's
    areas = [D.loose_disc(obj, rng).sum() for _ in range(50)]
    assert np.mean(areas) > 1.5 * obj.sum()  # looser than the object, as CaR's proposals are
    off = T.make_batch_ce(0, 1, 6, 64)
    on = T.make_batch_ce(0, 1, 6, 64, loose_prompt_p=1.0)
    assert torch.equal(on[4], off[4])  # same objects, same labels
    assert not torch.equal(on[3], off[3])  # drawn on other masks
    for x, y in zip(off, T.make_batch_ce(0, 1, 6, 64, loose_prompt_p=0.0)):
        assert torch.equal(x, y)


@pytest.mark.parametrize("objective,dense_weight,cam_weight",
                         [("ce", 0.0, 0.0), ("ce", 2.0, 0.0), ("ce", 2.0, 1.0), ("sigmoid", 0.0, 0.0)])
def test_loss_decreases_on_fixed_batch(objective, dense_weight, cam_weight):
    torch.set_num_threads(1)
    T = _load()
    _, _, info = T.train(steps=12, batch_size=8, seed=0, lr=2e-3, warmup=1, workers=0, log_every=0, fixed_batch=True,
                         objective=objective, dense_weight=dense_weight, cam_weight=cam_weight)
    h = info["history"]
    assert len(h) == 12
    assert np.mean(h[-3:]) < 0.8 * np.mean(h[:2]), h


def test_smoke_cli(tmp_path):
    T = _load()
    out = tmp_path / "w.pt"
    model, info = T.main(["--smoke", "--out", str(out)])
    assert info["steps"] == 5 and out.exists()
    from car.clip.load import load_clip

    loaded = load_clip({"arch": T.ARCH, "pretrained": str(out)})  # the path real checkpoints take
    torch.testing.assert_close(loaded.model.visual.proj, model.visual.proj.detach().half().float())


def test_saved_weights_do_not_depend_on_the_file_name(tmp_path):
    """torch.save names its zip records after the file's stem; save_weights must not, or the
    documented command (--out car/assets/tiny_clip.pt) could never reproduce the committed sha256."""
    T = _load()
    torch.manual_seed(0)
    model, _ = T.build_model()
    a = T.save_weights(model, tmp_path / "stage2.pt")
    b = T.save_weights(model, tmp_path / "sub" / "tiny_clip.pt")
    assert a == b == hashlib.sha256((tmp_path / "sub" / "tiny_clip.pt").read_bytes()).hexdigest()
    with torch.no_grad():
        model.visual.proj.add_(1.0)
    assert T.save_weights(model, tmp_path / "stage2.pt") != a  # and other weights, other bytes


def test_training_gradcam_is_cars_gradcam(tmp_path):
    """The map the --cam-weight loss trains is exactly the one CaR's ProposalGenerator computes."""
    from car.clip.load import load_clip
    from car.data.shapes import ShapesDataset
    from car.methods.car.proposals import ProposalGenerator, minmax, preprocess

    T = _load()
    torch.manual_seed(0)
    model, _ = T.build_model()
    T.save_weights(model, tmp_path / "w.pt")
    clip = load_clip({"arch": T.ARCH, "pretrained": str(tmp_path / "w.pt")})
    image = ShapesDataset("val", num_images=1)[0]["image"]
    texts = torch.nn.functional.normalize(torch.randn(len(T.LABELS), clip.model.text_projection.shape[1]), dim=-1)
    gen = ProposalGenerator(clip, lam=0.4, posemb_fp16_round=False)
    ref, _ = gen.gradcam(gen.encode(image), texts[None], torch.tensor([3]))  # [1, h, w]

    visual = clip.model.visual
    x = T.visual_trunk(visual, preprocess(image, clip)).requires_grad_(True)  # load_clip freezes the weights
    raw, patches = T.training_gradcam(visual, x, torch.tensor([3]), texts, clip.logit_scale)
    ours = minmax(minmax(raw.clamp_min(0)).clamp_min(0))
    assert patches.shape == (1, raw.shape[1], texts.shape[1])
    torch.testing.assert_close(ours.reshape(ref.shape), ref, atol=1e-4, rtol=1e-4)
    assert raw.requires_grad  # the channel weights stay differentiable (create_graph)


def test_gradcam_loss_rewards_mass_inside_the_object(monkeypatch):
    """The loss is low when the map's mass lies on the chosen class's tokens, high when outside."""
    T = _load()
    labels = torch.tensor([[0, 0, T.C, T.C, T.C, -100]])  # class 0 on two tokens, texture elsewhere

    def loss_for(cam):  # gradcam_loss with training_gradcam returning a chosen map
        def fixed(visual, x, choice, texts, scale):
            assert choice.tolist() == [0]
            return torch.tensor([cam]), torch.ones(1, 6, 4)

        monkeypatch.setattr(T, "training_gradcam", fixed)
        return T.gradcam_loss(None, torch.zeros(1, 7, 4), labels, None, 1.0, np.random.default_rng(0))[0]

    good, bad = [3.0, 3.0, 0, 0, 0, 9.0], [0, 0, 3.0, 3.0, 0, 9.0]  # the ignored token never counts
    assert loss_for(good) < 0.5 < loss_for(bad)


def test_committed_weights_match_their_provenance():
    """car/assets/tiny_clip.pt is the file car/assets/tiny_clip.md describes (sha256, size <= 10 MB)."""
    import re

    weights = ROOT / "car" / "assets" / "tiny_clip.pt"
    doc = (ROOT / "car" / "assets" / "tiny_clip.md").read_text()
    declared = re.search(r"^- sha256: `([0-9a-f]{64})`", doc, re.M).group(1)
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == declared
    size = int(re.search(r"fp16 state dict, ([0-9,]+) bytes", doc).group(1).replace(",", ""))
    assert weights.stat().st_size == size <= 10 * 2**20
