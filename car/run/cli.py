"""The evaluation command: `car-evaluate` (installed) and `python evaluate.py` (checkout) both run
`main` here, with Hydra overrides and `-m` multiruns, e.g. `car-evaluate dataset=voc backbone=vitb16`.

The configs are found through car.config.CONFIG_DIR: the repository's conf/ in a checkout, the
package's car/conf/ when installed from a wheel.
"""

import sys

import hydra
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from car.config import CONFIG_DIR  # also registers the ${car_root:} ... resolvers
from car.errors import CarError
from car.outputs import check_output_dir
from car.run.console import console
from car.run.inputs import check_inputs
from car.settings import validate


class RunDirCheck(Callback):
    """Hydra callback (conf/config.yaml `hydra.callbacks`): before Hydra creates the run (or sweep)
    directory, prove it can be written, so that a read-only or full location is one sentence, exit 2."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        self._check(config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        self._check(config.hydra.sweep.dir, "hydra.sweep.dir")

    @staticmethod
    def _check(path: str, key: str) -> None:
        try:
            check_output_dir(path, f"the run directory ({key})", create=False)
        except CarError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)


@hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    try:
        settings = validate(cfg)  # conf values against the settings table, before anything heavy is imported
        check_inputs(settings)  # every missing weight (and then the dataset) in one sentence, within seconds
        with console(verbose=settings.run.verbose):  # libraries' chatter only with verbose=true
            from car.metrics.schema import task_of
            from car.run.evaluation import run_evaluation

            metrics = run_evaluation(settings)
            return metrics[task_of(metrics).headline]  # miou, or j_and_f for video (car/metrics/schema.py)
    except CarError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
