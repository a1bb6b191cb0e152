"""`on_bad_sample`: what a run does with a sample whose files are missing or broken.

* fail (default): the loader's CarError stops the run with its one-sentence message.
* skip: the sample is replaced by a marker; the predictor counts it and metrics.json lists
  every skipped file with its reason. The metric then covers only the readable images, and
  says so: never a silently wrong number.
"""

from __future__ import annotations

from torch.utils.data import Dataset

from car.errors import CarError

ON_BAD_SAMPLE = ("fail", "skip")


class GuardedDataset(Dataset):
    def __init__(self, dataset: Dataset, on_bad_sample: str = "fail"):
        if on_bad_sample not in ON_BAD_SAMPLE:
            raise CarError(f"on_bad_sample must be one of {ON_BAD_SAMPLE}, got '{on_bad_sample}'.")
        self.dataset = dataset
        self.on_bad_sample = on_bad_sample

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        try:
            return self.dataset[index]
        except CarError as err:
            if self.on_bad_sample == "fail":
                raise
            return {"skipped": True, "index": index, "error": str(err)}
