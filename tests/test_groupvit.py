"""GroupViT (method=groupvit, car/methods/peers/groupvit.py): the transformers model of the real config (shape
check), the official protocol on a small random model, end to end on the VOC samples, and the refusals."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from car.config import compose
from car.errors import CarError
from car.methods.peers.groupvit import GroupViTSegmenter, groupvit_classes, load_groupvit
from car.methods.peers.segmenter import InputGeometry
from car.run.evaluation import evaluate
from tests.conftest import SHARED_DATA, require_shared_data

transformers = pytest.importorskip("transformers")

QUIET = ["logger=none", "num_overlays=0", "trainer.enable_progress_bar=false", "save_predictions=false"]
GEOMETRY = InputGeometry(short_side=64, max_long_side=293, crop=64, stride=32)


def micro_config() -> dict:
    return dict(compose(["method=groupvit_micro_random"]).method.model.config)


@pytest.fixture(scope="module")
def micro_model():
    from omegaconf import OmegaConf

    return load_groupvit(None, OmegaConf.to_container(compose(["method=groupvit_micro_random"]).method.model.config))


def test_default_config_is_the_gcc_yfcc_architecture():
    """transformers' GroupViTConfig() against NVlabs/GroupViT configs/group_vit_gcc_yfcc_30e.yml (+ default.yml):
    embed_dim 384, depths [6, 3, 3], num_heads 6, group tokens [64, 8, 0], output groups [64, 8], patch 16
    at 224 px, text width 256 x 12 layers (heads = width // 64), projection MLP 2 layers (4096) to 256,
    contrast temperature 0.07. The hub's config.json itself could not be read offline."""
    config = transformers.GroupViTConfig()
    vision, text = config.vision_config, config.text_config
    assert (vision.hidden_size, tuple(vision.depths), vision.num_attention_heads) == (384, (6, 3, 3), 6)
    assert tuple(vision.num_group_tokens) == (64, 8, 0) and tuple(vision.num_output_groups)[:2] == (64, 8)
    assert (vision.image_size, vision.patch_size, vision.num_hidden_layers) == (224, 16, 12)
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads, text.vocab_size) == (256, 12, 4, 49408)
    assert (config.projection_dim, config.projection_intermediate_dim) == (256, 4096)
    assert abs(config.logit_scale_init_value - float(np.log(1 / 0.07))) < 1e-4
    assert compose(["method=groupvit"]).method.model.config == {}  # the shipped config uses these defaults


def test_real_config_shapes():
    """A randomly initialised model of the real config: 8 final groups, scores at the window's pixels."""
    model = load_groupvit(None, {})
    assert sum(p.numel() for p in model.parameters()) > 50_000_000
    classes = groupvit_classes("voc", ["background", "cat", "dog", "car"], None, with_background=True)
    segmenter = GroupViTSegmenter(model, classes, ["a photo of a {}."], GEOMETRY, bg_thresh=0.95)
    with torch.no_grad():
        scores = segmenter.window_scores(torch.randn(1, 3, 224, 224))
        vision = model.vision_model
        encoded = vision.encoder(hidden_states=vision.embeddings(torch.randn(1, 3, 224, 224)), output_attentions=True)
    assert scores.shape == (1, 4, 224, 224)  # background + 3 classes
    assert [a.shape for a in encoded.attentions] == [(1, 64, 196), (1, 8, 64)]  # patches -> 64 -> 8 groups
    assert segmenter.class_embeddings().shape == (3, 256)


def test_window_scores_follow_the_official_rule(micro_model):
    names = ["background"] + [f"class {i}" for i in range(7)]
    classes = groupvit_classes("voc", names, None, with_background=True)
    segmenter = GroupViTSegmenter(micro_model, classes, ["a photo of a {}."], GEOMETRY, bg_thresh=0.95, top_k=2)
    torch.manual_seed(1)
    with torch.no_grad():
        scores = segmenter.window_scores(torch.randn(1, 3, 64, 64))[0]  # [1 + 7, 64, 64]
    foreground = scores[1:].reshape(7, -1).T  # [pixels, classes]
    rows = torch.unique(foreground, dim=0)
    assert len(rows) <= 4  # one score vector per final group (num_output_groups 4)
    assert ((rows > 0).sum(dim=1) <= 2).all()  # only the window's top-2 classes score
    assert (foreground.sum(dim=1) <= 1 + 1e-5).all()  # softmax over the kept classes times the plain softmax
    best, background = foreground.max(dim=1).values, scores[0].reshape(-1) == 1
    if background.any() and (~background).any():  # background: the pixels whose best score is below a threshold
        assert best[background].max() < best[~background].min()
    segmenter.bg_thresh = 0.0  # min(bg_thresh, largest affinity) = 0: no background at all
    with torch.no_grad():
        assert not (segmenter.window_scores(torch.randn(1, 3, 64, 64))[0, 0] == 1).any()


def test_label_map_and_cpu_part(micro_model):
    classes = groupvit_classes("voc20", ["background", "cat", "dog"], None, with_background=False)
    segmenter = GroupViTSegmenter(micro_model, classes, ["a photo of a {}."], GEOMETRY, bg_thresh=None)
    image = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    scores, info = segmenter.propose({"image": image})
    assert scores.shape == (2, 64, 90) and info == {"steps": [1], "kept": [[1, 2]]}  # resized to a short side of 64
    cpu = segmenter.cpu_part()
    assert cpu.model is None and segmenter.model is micro_model
    labels = cpu.finish(image, scores)
    assert labels.shape == (50, 70) and set(np.unique(labels)) <= {1, 2}  # no background class without one


def test_end_to_end_on_the_voc_samples(tmp_path):
    require_shared_data()
    base = QUIET + ["backbone=micro_random", f"paths.data_root={SHARED_DATA}", "method=groupvit_micro_random",
                    "dataset.limit=1"]
    metrics = evaluate(compose(base + ["dataset=voc"], output_dir=tmp_path / "voc"))
    saved = json.loads((tmp_path / "voc" / "metrics.json").read_text())
    assert saved["peer"]["method"] == "groupvit" and saved["config"]["method"]["bg_thresh"] == 0.95
    assert saved["published"]["miou"] == 52.3 and saved["published"]["verified"] is True
    assert saved["peer"]["geometry"] == {"short_side": 64, "max_long_side": 293, "crop": 64, "stride": 32}
    assert metrics["num_images"] == 1 and set(saved["all_rules"]) == {"gt_present/with_background",
                                                                      "union_present/with_background"}
    no_bg = evaluate(compose(base + ["dataset=voc20"], output_dir=tmp_path / "voc20"))
    assert no_bg["published"]["miou"] == 79.7 and no_bg["published"]["bg_protocol"] == "standard"
    assert all(row[0] == 0 for row in no_bg["confusion_matrix"])  # GroupViT queries no background on VOC-20
    assert "union_present/standard_no_bg" in no_bg["all_rules"]


def test_groupvit_does_not_load_the_backbone(tmp_path, monkeypatch):
    """method=groupvit never loads the backbone's CLIPs (the dataset configs name ViT-B/16 + ViT-L/14)."""
    require_shared_data()
    import car.run.evaluation

    def refuse(cfg, *args, **kwargs):
        raise AssertionError("the backbone was loaded")

    monkeypatch.setattr(car.run.evaluation, "load_backbones", refuse)
    metrics = evaluate(compose(QUIET + ["backbone=micro_random", f"paths.data_root={SHARED_DATA}", "dataset=voc",
                                        "method=groupvit_micro_random", "dataset.limit=1"], output_dir=tmp_path))
    assert metrics["num_images"] == 1


def test_the_backbone_weights_are_not_required():
    """The dataset configs name the CaR backbone pair (OpenAI weights, absent offline): GroupViT needs none of it."""
    from car.run.inputs import check_inputs
    from car.settings import validate

    check_inputs(validate(compose(["method=groupvit", "dataset=voc", f"paths.data_root={SHARED_DATA}"])))


def test_missing_weights_are_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    for pretrained in ("nvidia/groupvit-gcc-yfcc", str(tmp_path / "no-such-folder")):
        with pytest.raises(CarError) as info:
            load_groupvit(pretrained)
        message = str(info.value)
        assert message.startswith(f"GroupViT weights {pretrained!r}") and "\n" not in message
        assert "method.model.pretrained=/path/to/a/saved/model/folder" in message and message.endswith(".")


def test_a_saved_folder_loads(tmp_path, micro_model):
    micro_model.save_pretrained(tmp_path / "groupvit")
    again = load_groupvit(str(tmp_path / "groupvit"))
    assert torch.equal(again.logit_scale, micro_model.logit_scale)


def test_refusals(monkeypatch, micro_model):
    classes = groupvit_classes("voc", ["background", "cat"], None, with_background=True)
    with pytest.raises(CarError, match=r"^method.bg_thresh is null, but this dataset scores a background class"):
        GroupViTSegmenter(micro_model, classes, ["a photo of a {}."], GEOMETRY, bg_thresh=None)
    with pytest.raises(CarError, match="method.class_names has 2 names, dataset 'voc' has 1 classes"):
        groupvit_classes("voc", ["background", "cat"], ["cat", "dog"], with_background=True)
    with pytest.raises(CarError, match="is not a GroupViT configuration"):
        load_groupvit(None, {"vision_config": {"depths": "x"}, "no_such_field": {"a": 1}, "text_config": 3})
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(CarError, match=r"^method=groupvit needs the transformers package .*pip install"):
        load_groupvit(None)


def test_context_uses_mmseg_names_and_its_threshold():
    cfg = compose(["method=groupvit", "dataset=context60"])
    assert cfg.method.bg_thresh == 0.35 and cfg.method.class_names[0] == "aeroplane"
    assert list(compose(["method=groupvit", "dataset=context59"]).method.class_names) == list(cfg.method.class_names)
    assert compose(["method=groupvit", "dataset=ade150"]).method.bg_thresh is None
