"""One table of the segmentation methods: `method.name` -> its factory and what the run needs to know
about it. car/run/ dispatches from here; each method's factory lives beside its code."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from car.errors import CarError
from car.methods.car import build as car_build
from car.methods.peers import build as peers_build
from car.methods.segmenter import Segmenter
from car.settings import OTHER_METHODS, PEER_METHODS, Settings


@dataclass(frozen=True)
class Method:
    build: Callable[..., Segmenter]  # (settings, proposal_clip, classifier_clip) -> Segmenter
    predicts_background: Callable[[Settings], bool]  # can its label maps hold the background class?
    uses_backbone: bool = True  # loads the `backbone` CLIPs (GroupViT brings its own model)
    run_notes: Callable[[Settings, Segmenter], dict] | None = None  # extra metrics.json fields


_PEER = Method(peers_build.build_peer_segmenter, peers_build.predicts_background, run_notes=peers_build.run_notes)
REGISTRY: dict[str, Method] = {
    "car": Method(car_build.build_segmenter, car_build.predicts_background),
    **{name: _PEER for name in PEER_METHODS},
    **{name: Method(peers_build.build_peer_segmenter, peers_build.predicts_background, uses_backbone=False,
                    run_notes=peers_build.run_notes) for name in OTHER_METHODS},
}


def method_of(settings: Settings) -> Method:
    """The registry entry of `settings.method` (validation allows only the names of car.settings.METHODS)."""
    if settings.method not in REGISTRY:
        raise CarError(f"method '{settings.method}' is not implemented; choose one of {', '.join(REGISTRY)}.")
    return REGISTRY[settings.method]
