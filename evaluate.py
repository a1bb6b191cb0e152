"""Evaluate CaR on a dataset: `python evaluate.py dataset=voc backbone=vitb16` (see conf/)."""

import sys

import hydra
from omegaconf import DictConfig

import car.config  # noqa: F401  (registers the ${car_root:} resolver)
from car.errors import CarError
from car.settings import validate


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    try:
        validate(cfg)  # conf values against car/settings.py's table, before anything heavy is imported
        from car.evaluation import evaluate

        return evaluate(cfg)["miou"]
    except CarError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
