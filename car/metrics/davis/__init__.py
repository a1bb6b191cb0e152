"""The DAVIS-2017 video object segmentation measures (J, F, J&F), the official toolkit's definitions.

``python -m car.metrics.davis --davis-root DIR --results DIR`` (console script ``car-davis``)
scores a results folder in DAVIS layout and prints the toolkit's tables.
"""

from car.metrics.davis.folder import DavisInputError, evaluate_folder, score_folder
from car.metrics.davis.measures import boundary_measure, object_statistics, region_similarity, seg2bmap
from car.metrics.davis.protocol import GLOBAL_KEYS, TASKS, DavisMeasures

__all__ = ["GLOBAL_KEYS", "TASKS", "DavisInputError", "DavisMeasures", "boundary_measure", "evaluate_folder",
           "object_statistics", "region_similarity", "score_folder", "seg2bmap"]
