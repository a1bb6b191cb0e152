"""CLIP loading: random init, local checkpoints (open_clip and OpenAI TorchScript), clear errors."""

import os
import pickle
import re
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


def _torchscript_lookalike(path):
    """A zip whose names look like a TorchScript archive (code/, constants.pkl) but is not one."""
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ViT-B-16/code/__torch__/model.py", "def forward(self): pass\n")
        archive.writestr("ViT-B-16/constants.pkl", b"not a pickle")
        archive.writestr("ViT-B-16/data.pkl", b"not a pickle")


def _bad_checkpoints(tmp_path, micro_clip):
    """name -> (path, what its one sentence must say). Each is a file that cannot be CLIP weights."""
    good = tmp_path / "good.pt"
    torch.save(micro_clip.model.state_dict(), good)
    data = good.read_bytes()
    cases = {}
    path = tmp_path / "ViT-B-16.pt"
    _torchscript_lookalike(path)
    cases["torchscript_lookalike"] = (path, r"looks like a TorchScript archive .* torch\.jit\.load cannot read it")
    path = tmp_path / "pickle.safetensors"
    path.write_bytes(pickle.dumps({"visual.proj": [1.0]}))
    cases["pickle_as_safetensors"] = (path, r"is named \.safetensors but holds a PyTorch pickle \(pickle stream\)")
    path = tmp_path / "torch_zip.safetensors"
    path.write_bytes(data)
    cases["torch_zip_as_safetensors"] = (path, r"is named \.safetensors but holds a PyTorch pickle \(zip archive\)")
    path = tmp_path / "truncated.pt"
    path.write_bytes(data[: len(data) // 2])
    cases["truncated_pt"] = (path, r"is a truncated or corrupt zip archive .*; fetch it again\.$")
    path = tmp_path / "truncated.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in micro_clip.model.state_dict().items()}, str(path))
    path.write_bytes(path.read_bytes()[:100])
    cases["truncated_safetensors"] = (path, r"is not a readable safetensors file .*truncated or corrupt")
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    cases["empty"] = (path, r"is an empty file \(0 bytes\)")
    path = tmp_path / "weights_dir.pt"
    path.mkdir()
    cases["directory"] = (path, r"is a directory, not a checkpoint file")
    path = tmp_path / "training.pt"
    torch.save({**micro_clip.model.state_dict(), "epoch": 3}, path)  # a training checkpoint's extras
    cases["non_tensor_entry"] = (path, r"has 1 non-tensor entry \(e\.g\. 'epoch'\)")
    return cases


BAD_CHECKPOINTS = ["torchscript_lookalike", "pickle_as_safetensors", "torch_zip_as_safetensors", "truncated_pt",
                   "truncated_safetensors", "empty", "directory", "non_tensor_entry"]


@pytest.mark.parametrize("name", BAD_CHECKPOINTS)
def test_broken_or_disguised_checkpoint_is_one_sentence(tmp_path, micro_clip, name):
    path, expected = _bad_checkpoints(tmp_path, micro_clip)[name]
    for load in (lambda: read_state_dict(path), lambda: load_clip({"arch": "car-micro-vit", "pretrained": str(path)},
                                                                   role="proposal")):
        with pytest.raises(CarError) as info:
            load()
        message = str(info.value)
        assert "\n" not in message and message.endswith(".") and str(path) in message
        assert re.search(expected, message), message


def test_evaluate_with_a_disguised_checkpoint_exits_2_with_one_line(tmp_path):
    path = tmp_path / "ViT-B-16.pt"
    _torchscript_lookalike(path)
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, "evaluate.py", "backbone=tiny", f"backbone.proposal.pretrained={path}",
         f"hydra.run.dir={tmp_path / 'run'}", "logger=none"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: CLIP checkpoint") and str(path) in lines[0], proc.stderr
    assert "TorchScript" in lines[0]
