"""`on_bad_sample`: what a run does with a sample whose files are missing or broken.

* fail (default): the loader's CarError stops the run with its one-sentence message.
* skip: the sample is replaced by a marker; the predictor counts it and metrics.json lists
  every skipped file with its reason. The metric then covers only the readable images, and
  says so: never a silently wrong number.

`check(sample)` (optional) vets a loaded sample the same way, e.g. an image above the pixel budget
with car.resize_large=false (car/methods/pixel_budget.py). Loaders that list their files up front
(VOC, Context, COCO-Object, RefCOCO) take `on_missing` = on_bad_sample: under skip a listed
file missing on disk is a skipped sample, not a stop.
"""

from __future__ import annotations

from collections.abc import Callable

from torch.utils.data import Dataset

from car.errors import CarError
from car.settings.enums import ON_BAD_SAMPLE


class GuardedDataset(Dataset):
    def __init__(self, dataset: Dataset, on_bad_sample: str = "fail", check: Callable[[dict], None] | None = None):
        if on_bad_sample not in ON_BAD_SAMPLE:
            raise CarError(f"on_bad_sample must be one of {ON_BAD_SAMPLE}, got '{on_bad_sample}'.")
        self.dataset = dataset
        self.on_bad_sample = on_bad_sample
        self.check = check  # raises CarError for a sample the run cannot take

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        try:
            sample = self.dataset[index]
            if self.check is not None:
                self.check(sample)
            return sample
        except CarError as err:
            if self.on_bad_sample == "fail":
                raise
            return {"skipped": True, "index": index, "error": str(err)}
