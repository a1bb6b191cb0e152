"""python -m car.metrics.davis: see car/metrics/davis/cli.py."""

import sys

from car.metrics.davis.cli import main

sys.exit(main())
