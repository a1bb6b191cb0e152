"""CLIP loading: random init, local checkpoints (open_clip and OpenAI TorchScript), clear errors."""

import os
import pickle
import subprocess
import sys

import open_clip
import pytest
import torch

from car.clip.load import load_clip, read_state_dict
from car.errors import CarError
from tests.conftest import REPO, SHARED_DATA

MICRO = {"arch": "car-micro-vit", "pretrained": None}


def _params_equal(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_random_init_has_architecture_facts(micro_clip):
    assert micro_clip.patch_size == 16 and micro_clip.image_size == 64
    assert micro_clip.logit_scale == pytest.approx(1 / 0.07, rel=1e-4)
    assert not any(p.requires_grad for p in micro_clip.model.parameters())


def test_quick_gelu_is_applied_for_openai_style_specs():
    clip = load_clip({"arch": "car-micro-vit", "pretrained": None, "quick_gelu": True})
    act = clip.visual.transformer.resblocks[0].mlp.gelu
    assert isinstance(act, open_clip.transformer.QuickGELU)


def test_local_open_clip_checkpoint_round_trip(tmp_path, micro_clip):
    path = tmp_path / "micro.pt"
    torch.save({"state_dict": micro_clip.model.state_dict()}, path)
    loaded = load_clip({"arch": "car-micro-vit", "pretrained": str(path)})
    assert _params_equal(loaded.model, micro_clip.model)


def test_fp16_checkpoint_loads_into_fp32_model(tmp_path, micro_clip):
    path = tmp_path / "micro16.pt"
    torch.save({k: v.half() for k, v in micro_clip.model.state_dict().items()}, path)
    loaded = load_clip({"arch": "car-micro-vit", "pretrained": str(path)})
    w = loaded.model.visual.conv1.weight
    assert w.dtype == torch.float32
    torch.testing.assert_close(w, micro_clip.model.visual.conv1.weight.half().float())


def test_openai_torchscript_archive_loads(tmp_path, micro_clip):
    """OpenAI's released .pt files are TorchScript archives; their keys match open_clip's."""

    class Holder(torch.nn.Module):  # a scripted module whose state dict is CLIP's
        def __init__(self, model):
            super().__init__()
            for name, child in model.named_children():
                self.add_module(name, child)
            for name, param in model.named_parameters(recurse=False):
                self.register_parameter(name, param)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    path = tmp_path / "ViT-micro.pt"
    torch.jit.save(torch.jit.script(Holder(micro_clip.model)), str(path))
    loaded = load_clip({"arch": "car-micro-vit", "pretrained": str(path)})
    assert _params_equal(loaded.model, micro_clip.model)


def _openai_layout_state(model):
    """A plain state dict as OpenAI saves it: the weights plus three int64 scalars."""
    state = dict(model.state_dict())
    state.update(input_resolution=torch.tensor(64), context_length=torch.tensor(77), vocab_size=torch.tensor(49408))
    return state


def test_openai_layout_plain_state_dict_loads(tmp_path, micro_clip):
    """A torch.save'd OpenAI-layout dict (like shared/golden/make_weights.py writes) loads."""
    path = tmp_path / "openai-micro.pt"
    torch.save(_openai_layout_state(micro_clip.model), path)
    loaded = load_clip({"arch": "car-micro-vit", "pretrained": str(path)})
    assert _params_equal(loaded.model, micro_clip.model)
    assert "input_resolution" not in read_state_dict(path)


def test_foreign_extra_key_is_still_refused(tmp_path, micro_clip):
    state = _openai_layout_state(micro_clip.model)
    state["head.extra_weight"] = torch.zeros(3)
    state["vocab_size"] = torch.zeros(4)  # not an int scalar: stays, and is refused too
    path = tmp_path / "foreign.pt"
    torch.save(state, path)
    with pytest.raises(CarError, match=r"0 missing, 2 unexpected keys"):
        load_clip({"arch": "car-micro-vit", "pretrained": str(path)})


def test_missing_weights_file_is_one_sentence():
    with pytest.raises(CarError, match=r"does not exist; point backbone.proposal.pretrained="):
        load_clip({"arch": "car-micro-vit", "pretrained": "/nowhere/ViT-B-16.pt"}, role="proposal")


def test_wrong_architecture_checkpoint(tmp_path, micro_clip):
    path = tmp_path / "micro.pt"
    torch.save(micro_clip.model.state_dict(), path)
    with pytest.raises(CarError, match="does not match architecture"):
        load_clip({"arch": "ViT-B-16", "pretrained": str(path)})


def test_malicious_pickle_checkpoint_does_not_run(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": Evil()}, f)
    with pytest.raises(CarError, match="weights_only"):
        read_state_dict(path)
    assert not marker.exists()


def test_offline_pretrained_tag_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache
    with pytest.raises(CarError, match=r"not in the local cache.* backbone.classifier.pretrained="):
        load_clip({"arch": "ViT-B-16", "pretrained": "openai", "quick_gelu": True}, role="classifier")


def test_unknown_architecture():
    with pytest.raises(CarError, match="Unknown CLIP architecture"):
        load_clip({"arch": "ViT-Q-99", "pretrained": None})


def test_evaluate_offline_openai_exits_with_one_sentence(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    proc = subprocess.run(
        [sys.executable, "evaluate.py", "dataset=voc", "backbone=vitb16", f"paths.data_root={SHARED_DATA}",
         f"paths.output_root={tmp_path}", "logger=none", "dataset.limit=1"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode != 0
    err_lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(err_lines) == 1, proc.stderr
    assert "openai" in err_lines[0] and "backbone.proposal.pretrained=" in err_lines[0]
    assert "Traceback" not in proc.stderr
