"""Conv stems declared as data keep conv1's contract and load through the normal path."""

import torch

from car.clip.load import load_clip
from car.clip.stems import ConvStem, stem_spec


def test_stem_matches_patchify_contract():
    stem = ConvStem(width=128, patch_size=8, channels=[32, 64])
    out = stem(torch.randn(2, 3, 48, 80))
    assert out.shape == (2, 128, 6, 10)  # [B, width, H/8, W/8]


def test_tiny_arch_declares_a_stem_and_round_trips(tmp_path):
    assert stem_spec("car-tiny-vit") == {"channels": [32, 64], "kernel_size": 3}
    assert stem_spec("car-micro-vit") is None
    torch.manual_seed(0)
    clip = load_clip({"arch": "car-tiny-vit", "pretrained": None})
    assert isinstance(clip.visual.conv1, ConvStem)
    path = tmp_path / "tiny.pt"
    torch.save(clip.model.state_dict(), path)
    again = load_clip({"arch": "car-tiny-vit", "pretrained": str(path)})
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(again.model.encode_image(x), clip.model.encode_image(x))
