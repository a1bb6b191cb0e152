"""One table of methods (car/methods/registry.py): every configured method has its factory there, and
what each factory builds offers the `Segmenter` protocol the predictor, the evaluation and the API use."""

import numpy as np
import pytest

from car.config import CONFIG_DIR, compose
from car.errors import CarError
from car.methods.registry import REGISTRY, method_of
from car.methods.segmenter import Segmenter, SplitSegmenter
from car.run.build import build_segmenter, load_backbones
from car.settings import METHODS, validate

CONFIGS = sorted(p.stem for p in (CONFIG_DIR / "method").glob("*.yaml") if p.stem != "groupvit")  # no GroupViT weights


def test_the_registry_holds_every_method_of_the_settings():
    assert tuple(REGISTRY) == METHODS
    assert {compose([f"method={name}"]).method.name for name in CONFIGS} <= set(REGISTRY)
    assert method_of(validate(compose([]))) is REGISTRY["car"]
    assert [name for name, m in REGISTRY.items() if not m.uses_backbone] == ["groupvit"]


def test_an_unknown_method_is_one_sentence():
    with pytest.raises(CarError, match=r"^method\.name='nope' is not allowed; choose one of: car, maskclip, .*\.$"):
        method_of(validate(compose(["method.name=nope"])))


@pytest.mark.parametrize("config", CONFIGS)
def test_every_factory_builds_a_segmenter(config):
    cfg = validate(compose(["backbone=micro_random", f"method={config}"]))
    clips = load_backbones(cfg) if method_of(cfg).uses_backbone else (None, None)
    segmenter = build_segmenter(cfg, *clips)
    assert isinstance(segmenter, SplitSegmenter) and isinstance(segmenter.cpu_part(), SplitSegmenter)
    assert all(hasattr(model, "parameters") for model in segmenter.models)
    assert (segmenter.budget is not None) == (cfg.method == "car")  # the peers size their own input
    image = np.zeros((24, 32, 3), np.uint8)
    proposals, info = segmenter.propose({"image": image, "image_id": "blank"})
    pred = segmenter.cpu_part().finish(image, proposals)
    assert pred.shape == (24, 32) and pred.dtype == np.int64 and set(info) >= {"steps", "kept"}


def test_the_protocol_refuses_what_lacks_a_part():
    class NoCpuPart:
        budget = sam_masks = None
        models: list = []

        def __call__(self, sample):
            return self.finish(sample["image"], self.propose(sample)[0]), {}

        def propose(self, sample):
            return None, {}

        def finish(self, image, proposals):
            return np.zeros(image.shape[:2], np.int64)

    assert isinstance(NoCpuPart(), Segmenter) and not isinstance(NoCpuPart(), SplitSegmenter)
    NoCpuPart.cpu_part = lambda self: self
    assert isinstance(NoCpuPart(), SplitSegmenter)
    del NoCpuPart.models
    assert not isinstance(NoCpuPart(), Segmenter)


def test_the_video_segmenter_is_a_segmenter():
    from car.config import compose as compose_cfg

    cfg = validate(compose_cfg(["dataset=shapes_video", "backbone=micro_random"]))
    segmenter = build_segmenter(cfg, *load_backbones(cfg))
    assert isinstance(segmenter, Segmenter) and segmenter.budget is None and segmenter.models == []
