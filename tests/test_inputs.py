"""Missing weights on a stranger's machine: every one is named before any model loads, within seconds,
and a tag already in the local cache loads from there without a network call (car/clip/weights.py,
car/run/inputs.py)."""

import logging
import os
import resource
import subprocess
import sys
import time

import open_clip
import pytest
import torch

from car.clip import load as clip_load
from car.clip.weights import Weights, cached_file, locate, missing_weights
from car.config import compose
from car.run.inputs import MissingInputs, check_inputs
from car.settings import validate
from tests.conftest import REPO

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: refused at once, whatever network CI has


@pytest.fixture
def empty_hub_cache(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "hub"


def fake_cached_openai_b16(hub, name="open_clip_model.safetensors"):
    repo = hub / "models--timm--vit_base_patch16_clip_224.openai"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    (repo / "snapshots" / "0123abcd").mkdir(parents=True)
    path = repo / "snapshots" / "0123abcd" / name
    path.write_bytes(b"weights")
    return path


def test_missing_weights_names_every_one(empty_hub_cache):
    both_same = missing_weights(compose(["backbone=vitb16"]).backbone)
    assert both_same == [("backbone.proposal and backbone.classifier ViT-B-16 'openai'",
                          "not in the local cache, huggingface.co unreachable",
                          "backbone.proposal.pretrained=/path/to/ViT-B-16.pt "
                          "backbone.classifier.pretrained=/path/to/ViT-B-16.pt")]
    pair = missing_weights(compose(["backbone=vitb16_vitl14"]).backbone)
    assert [what for what, _, _ in pair] == ["backbone.proposal ViT-B-16 'openai'",
                                             "backbone.classifier ViT-L-14 'openai'"]
    file = missing_weights(compose(["backbone=vitb16", "backbone.classifier.pretrained=/no/such/b16.pt"]).backbone)
    assert file[1][:2] == ("backbone.classifier ViT-B-16 file '/no/such/b16.pt'", "no such file")


@pytest.mark.parametrize("backbone", ["tiny", "micro_random", "tiny_random"])
def test_local_and_random_weights_are_never_missing(backbone, empty_hub_cache):
    assert missing_weights(compose([f"backbone={backbone}"]).backbone) == []
    # the data is checked later
    check_inputs(validate(compose([f"backbone={backbone}", "dataset=voc", "paths.data_root=/nonexistent"])))


def test_a_cached_tag_is_found_without_the_network(empty_hub_cache):
    path = fake_cached_openai_b16(empty_hub_cache)
    weights = locate({"arch": "ViT-B-16", "pretrained": "openai"})
    assert weights.kind == "cached" and weights.path == path and weights.tag_cfg["quick_gelu"] is True
    assert missing_weights(compose(["backbone=vitb16"]).backbone) == []
    assert cached_file(open_clip.get_pretrained_cfg("ViT-L-14", "openai")) is None


def test_the_bin_file_is_found_too(empty_hub_cache):
    path = fake_cached_openai_b16(empty_hub_cache, name="open_clip_pytorch_model.bin")
    assert locate({"arch": "ViT-B-16", "pretrained": "openai"}).path == path


def test_the_sentence_names_weights_and_dataset(empty_hub_cache):
    cfg = compose(["dataset=voc", "backbone=vitb16_vitl14", "paths.data_root=/nonexistent"])
    with pytest.raises(MissingInputs) as err:
        check_inputs(validate(cfg))
    text = str(err.value)
    assert text.startswith("missing inputs: CLIP weights backbone.proposal ViT-B-16 'openai' and "
                           "backbone.classifier ViT-L-14 'openai' (not in the local cache, huggingface.co unreachable)")
    assert "backbone.classifier.pretrained=/path/to/ViT-L-14.pt" in text and "Pascal VOC 2012 not found" in text
    assert text.endswith(".") and "\n" not in text


def test_a_cached_tag_loads_from_the_cached_file(monkeypatch, tmp_path, caplog):
    """load_clip reads the cached file itself (no open_clip download call) with the tag's normalisation,
    and open_clip's "initialized randomly" notice does not appear although the model starts empty."""
    clip_load.register_model_configs()
    torch.manual_seed(1)
    source = open_clip.create_model("car-micro-vit", pretrained=None)
    path = tmp_path / "open_clip_model.pt"
    torch.save(source.state_dict(), path)
    cfg = {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25), "hf_hub": "org/repo/"}
    monkeypatch.setattr(clip_load, "locate", lambda spec, role: Weights("cached", "car-micro-vit", "openai", path, cfg))
    real_create = open_clip.create_model

    def create(arch, pretrained=None, **kwargs):
        assert pretrained is None, "a cached tag must not go through open_clip's download"
        return real_create(arch, pretrained=None, **kwargs)

    monkeypatch.setattr(open_clip, "create_model", create)
    caplog.clear()  # the source model above was built through open_clip directly
    with caplog.at_level(logging.INFO):
        clip = clip_load.load_clip({"arch": "car-micro-vit", "pretrained": "openai"}, role="proposal")
    assert clip.pretrained == "openai" and clip.mean == (0.5, 0.5, 0.5) and clip.std == (0.25, 0.25, 0.25)
    for key, value in source.state_dict().items():
        torch.testing.assert_close(clip.model.state_dict()[key], value)
    assert not [r for r in caplog.records if "No pretrained weights loaded" in r.getMessage()]


def test_random_init_keeps_only_our_warning(caplog):
    with caplog.at_level(logging.INFO):
        clip_load.load_clip({"arch": "car-micro-vit", "pretrained": None}, role="classifier")
    messages = [r.getMessage() for r in caplog.records]
    assert any("RANDOMLY INITIALISED" in m for m in messages)
    assert not any("No pretrained weights loaded" in m for m in messages)


def test_a_missing_tag_in_load_clip_is_one_sentence(empty_hub_cache):
    from car.errors import CarError

    with pytest.raises(CarError, match=r"^CLIP weights backbone.classifier ViT-L-14 'openai' \(not in the local cache"):
        clip_load.load_clip({"arch": "ViT-L-14", "pretrained": "openai", "quick_gelu": True}, role="classifier")


def test_cli_offline_without_weights_or_data_is_one_fast_sentence(tmp_path):
    """No cache, no HF_HUB_OFFLINE, an unreachable hub: one line, exit 2, within 10 s (was ~52 s of retries)."""
    drop = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_ENDPOINT=UNREACHABLE, HOME=str(tmp_path / "home"))
    cpu_before, start = _children_cpu(), time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "evaluate.py", "dataset=voc", "backbone=vitb16", f"paths.data_root={tmp_path / 'data'}",
         f"paths.output_root={tmp_path / 'out'}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    elapsed, cpu = time.perf_counter() - start, _children_cpu() - cpu_before
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and proc.stdout.strip() == "", proc.stderr
    line = lines[0]
    assert line.startswith("error: missing inputs: CLIP weights backbone.proposal and backbone.classifier "
                           "ViT-B-16 'openai' (not in the local cache, 127.0.0.1 unreachable)")
    assert ("backbone.proposal.pretrained=/path/to/ViT-B-16.pt "
            "backbone.classifier.pretrained=/path/to/ViT-B-16.pt") in line
    assert "Pascal VOC 2012 not found" in line and "Traceback" not in proc.stderr
    # 10 s of work at most; wall-clock too where the CPUs are not oversubscribed (shared CI machines).
    # Waiting on the network (the old ~52 s of retries) would also print retry warnings: one line above.
    assert cpu < 10, f"{cpu:.1f} s of CPU"
    if os.getloadavg()[0] <= (os.cpu_count() or 1):
        assert elapsed < 10, f"took {elapsed:.1f} s"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
