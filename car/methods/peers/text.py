"""Text side of the peers: which strings are queried for which label, and their embeddings.

Class names. The peers' repositories ship one name file per benchmark (`cls_voc21.txt`, ...): one
line per class in label order, synonyms separated by commas; a class scores as its best synonym.
Line 1 of a with-background file is the background class, written as one word (ClearCLIP:
`background`) or as a list of stuff words (SCLIP, NACLIP). A file with one line fewer than the
dataset's classes has no background line (VOC-20, Context-59): its lines are labels 1..K-1.
`class_names.dir` names the folder of those files (../shared/data/class_names/<family> holds
copies); without a file (ADE-847 and Context-459 have none: no peer evaluates them) the dataset
config's own class names are used, split on commas into synonyms as the files are, with the
method's `background_words` as the background class when the dataset has one (its name source is
logged).

Templates. Every query is embedded with the 80 ImageNet prompt templates of CLIP (the list
open_clip ships, identical to the peers' `openai_imagenet_template`): the class embedding is the
normalised mean of the normalised template embeddings. Per-string embeddings come from CaR's
TextEncoder, so they share its in-memory and on-disk caches.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

from car.clip.text import TextEncoder, fill
from car.errors import CarError

log = logging.getLogger(__name__)

IMAGENET_TEMPLATES: list[str] = [make("{}") for make in OPENAI_IMAGENET_TEMPLATES]  # 80, "{}" = class name
# dataset config name -> the peers' name file for it
NAMES_FILES = {"voc": "cls_voc21.txt", "voc20": "cls_voc20.txt", "context60": "cls_context60.txt",
               "context59": "cls_context59.txt", "coco_object": "cls_coco_object.txt",
               "coco_stuff": "cls_coco_stuff.txt", "cityscapes": "cls_city_scapes.txt", "ade150": "cls_ade20k.txt"}


@dataclass
class ClassQueries:
    queries: list[str]  # Q strings put into the templates
    query_class: list[int]  # Q: index into label_ids of the class each query stands for
    label_ids: list[int]  # C: dataset label id of each class
    source: str  # the name file, or "dataset config"

    @property
    def has_background(self) -> bool:
        return 0 in self.label_ids


def resolve_templates(spec) -> list[str]:
    """`imagenet80` or an explicit list of templates with `{}` for the class name."""
    if spec in (None, "imagenet80"):
        return list(IMAGENET_TEMPLATES)
    if isinstance(spec, str) or not all("{}" in t for t in spec):
        raise CarError(f"method.templates must be 'imagenet80' or a list of strings with '{{}}', got {spec!r}.")
    return list(spec)


def read_names_file(path: str | Path) -> list[list[str]]:
    """One list of synonyms per non-empty line (split on commas, stripped)."""
    lines = [line.strip() for line in Path(path).read_text().splitlines()]
    return [[name.strip() for name in line.split(",") if name.strip()] for line in lines if line]


def queries_from_classes(classes: list[list[str]], label_ids: list[int], source: str) -> ClassQueries:
    queries, query_class = [], []
    for index, synonyms in enumerate(classes):
        queries += synonyms
        query_class += [index] * len(synonyms)
    return ClassQueries(queries, query_class, list(label_ids), source)


def class_queries(dataset_name: str, class_names: list[str], names_dir: str | None, background_words: list[str],
                  query_background: bool) -> ClassQueries:
    """The queries of one dataset: from the peers' name file when present, else from the dataset config."""
    num_classes = len(class_names)
    path = Path(names_dir) / NAMES_FILES[dataset_name] if names_dir and dataset_name in NAMES_FILES else None
    if path is not None and path.is_file():
        classes = read_names_file(path)
        if len(classes) == num_classes:
            return queries_from_classes(classes, list(range(num_classes)), str(path))
        if len(classes) == num_classes - 1:
            return queries_from_classes(classes, list(range(1, num_classes)), str(path))
        raise CarError(f"name file {path} has {len(classes)} classes, dataset '{dataset_name}' has {num_classes}: "
                       f"point method.class_names.dir at the folder of the matching cls_*.txt files.")
    if path is not None:
        log.warning("peer name file %s not found: using the class names of the dataset config", path)
    classes = [[part.strip() for part in name.split(",") if part.strip()] or [name] for name in class_names[1:]]
    ids = list(range(1, num_classes))
    if query_background:
        if not background_words:
            raise CarError("method.class_names.background_words is empty, but the dataset has a background class.")
        classes, ids = [list(background_words)] + classes, [0] + ids
    return queries_from_classes(classes, ids, "dataset config")


@torch.no_grad()
def class_embeddings(encoder: TextEncoder, queries: list[str], templates: list[str]) -> torch.Tensor:
    """Template-ensembled unit-norm embeddings [Q, D] (on the encoder's model device)."""
    texts = [fill(t, q) for q in queries for t in templates]
    per_text = encoder(texts).reshape(len(queries), len(templates), -1)  # [Q, T, D], each unit norm
    return F.normalize(per_text.mean(dim=1), dim=-1)
