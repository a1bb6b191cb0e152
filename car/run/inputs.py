"""Are a run's inputs there? Checked before any model loads, in one sentence.

`check_inputs(settings)` looks up every CLIP weight of the backbone config (car.clip.weights: local
files, the local caches, whether the download host answers) and, only when some weight is
missing, probes the dataset too, so that a run on a stranger's machine stops once, naming
everything it lacks and the overrides that supply it:

    error: missing inputs: CLIP weights backbone.proposal and backbone.classifier ViT-B-16 'openai'
    (not in the local cache, huggingface.co unreachable); supply local files with
    backbone.proposal.pretrained=/path/to/ViT-B-16.pt backbone.classifier.pretrained=/path/to/ViT-B-16.pt
    (OpenAI or open_clip checkpoints); and the dataset: Pascal VOC 2012 not found at ... .

It imports open_clip only when a weight is an open_clip tag, and neither Lightning nor the model
code, so the CLI can call it first and answer within seconds.
"""

from __future__ import annotations

from omegaconf import OmegaConf

from car.errors import CarError
from car.settings import Settings


class MissingInputs(CarError):
    """Weights (and maybe the dataset) a run needs are not on this machine."""


def dataset_problem(settings: Settings) -> str | None:
    """The dataset loader's own sentence when its files are not there, else None."""
    from car.data.build import build_dataset

    try:
        build_dataset(settings)
    except CarError as err:
        return str(err)
    return None


def missing_inputs_sentence(weights: list[tuple[str, str, str]], data: str | None) -> str:
    """One sentence from car.clip.weights.missing_weights' entries and the dataset's problem."""
    by_reason: dict[str, list[str]] = {}
    for what, why, _ in weights:
        by_reason.setdefault(why, []).append(what)
    named = ", ".join(f"{' and '.join(whats)} ({why})" for why, whats in by_reason.items())
    overrides = " ".join(override for _, _, override in weights)
    sentence = f"missing inputs: CLIP weights {named}; supply local files with {overrides} " \
               f"(OpenAI or open_clip checkpoints)"
    if data:
        sentence += f"; and the dataset: {data.rstrip('.')}"
    return sentence + "."


def check_inputs(settings: Settings) -> None:
    """Raise `MissingInputs` (one sentence) when a CLIP weight is missing; with it, the dataset's
    problem if it has one. Does nothing when every weight can be loaded."""
    from car.clip.device import check_accelerator
    from car.clip.weights import missing_weights

    cfg = settings.config
    trainer = cfg.get("trainer") or {}
    check_accelerator(trainer.get("accelerator", "cpu"), trainer.get("devices", "auto"))  # before any model loads
    if OmegaConf.select(cfg, "method.model") is not None:
        return  # a method with its own model (method=groupvit) loads no backbone CLIP; its weights fail in one sentence
    weights = missing_weights(cfg.backbone)
    if weights:
        raise MissingInputs(missing_inputs_sentence(weights, dataset_problem(settings)))
