"""The evaluation command: `car-evaluate` (installed) and `python evaluate.py` (checkout) both run
`main` here, with Hydra overrides and `-m` multiruns, e.g. `car-evaluate dataset=voc backbone=vitb16`.

The configs are found through car.config.CONFIG_DIR: the repository's conf/ in a checkout, the
package's car/conf/ when installed from a wheel.
"""

import sys

import hydra
from omegaconf import DictConfig

from car.config import CONFIG_DIR  # also registers the ${car_root:} ... resolvers
from car.run.console import console
from car.errors import CarError
from car.run.inputs import check_inputs
from car.settings import validate


@hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    try:
        validate(cfg)  # conf values against car/settings.py's table, before anything heavy is imported
        check_inputs(cfg)  # every missing weight (and then the dataset) in one sentence, within seconds
        with console(verbose=bool(cfg.get("verbose", False))):  # libraries' chatter only with verbose=true
            from car.metrics.schema import task_of
            from car.run.evaluation import evaluate

            metrics = evaluate(cfg)
            return metrics[task_of(metrics).headline]  # miou, or j_and_f for video (car/metrics/schema.py)
    except CarError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
