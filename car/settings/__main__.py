"""python -m car.settings (car/settings/cli.py)."""

import sys

from car.settings.cli import main

sys.exit(main())
