"""What a run prints: its own lines, not its libraries' chatter (top-level config key `verbose`).

At the default `verbose: false`, `console(False)` silences for the duration of a run:

* Lightning's INFO lines (GPU/TPU availability, the "💡 Tip" advertisements);
* open_clip's INFO lines about parsing and building models (it logs through the root logger);
* Lightning's PossibleUserWarnings, its "predict returned None" (ours returns nothing on purpose)
  and the LeafSpec deprecation that Lightning's own code triggers in torch.

`verbose=true` leaves all of them as the libraries print them. Errors and warnings that concern
the run (our random-weights warning, a skipped sample, a resized image) are never silenced.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

LIBRARY_LOGGERS = ("pytorch_lightning", "lightning_fabric", "lightning", "lightning.pytorch", "lightning.fabric")
NOISY_WARNINGS = (r"`isinstance\(treespec, LeafSpec\)` is deprecated",  # Lightning's own use of torch's pytree
                  r"predict returned None")  # our predict step records into the metric and returns nothing


class _OpenClipInfo(logging.Filter):
    """Drops open_clip's records below WARNING (logged on the root logger, so named by file)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or f"{os.sep}open_clip{os.sep}" not in record.pathname


@contextmanager
def console(verbose: bool = False) -> Iterator[None]:
    """Quiet the libraries while the block runs (unless `verbose`); restores everything after."""
    if verbose:
        yield
        return
    import pytorch_lightning  # noqa: F401  (sets its logger to INFO on import: import it before quieting it)
    from lightning_fabric.utilities.warnings import PossibleUserWarning

    root, chatter = logging.getLogger(), _OpenClipInfo()
    levels = {name: logging.getLogger(name).level for name in LIBRARY_LOGGERS}
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    root.addFilter(chatter)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=PossibleUserWarning)
            for message in NOISY_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        root.removeFilter(chatter)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
