"""Evaluate CaR on a dataset: `python evaluate.py dataset=voc backbone=vitb16` (see conf/)."""

import sys

import hydra
from omegaconf import DictConfig

import car.config  # noqa: F401  (registers the ${car_root:} resolver)
from car.errors import CarError


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    from car.evaluation import evaluate

    try:
        return evaluate(cfg)["miou"]
    except CarError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
