"""Evaluate CaR on a dataset: `python evaluate.py dataset=voc backbone=vitb16` (see conf/).

The same command as the installed `car-evaluate`: the Hydra main is car/run/cli.py's.
"""

from car.run.cli import main

if __name__ == "__main__":
    main()
