"""The API's inputs and outputs for one image: the image read as RGB, the phrases cleaned, and the
`Segmentation` that comes back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from car.data.images import array_to_rgb, pil_to_rgb, read_image_file
from car.errors import CarError

MAX_PHRASES = 254  # label ids 1..254 fit a palette PNG next to background 0 (255: VOC's ignore index)


def read_image(source) -> np.ndarray:
    """A path, PIL image or array -> RGB uint8 [H, W, 3] through the one image reader
    (car/data/images.py: camera EXIF orientation applied, 16-bit and float scaled, NaN refused)."""
    if isinstance(source, (str, Path)):
        return read_image_file(Path(source).expanduser(), exif=True, fix="give a readable image file")
    if isinstance(source, Image.Image):
        return pil_to_rgb(source, what="The PIL image", exif=True)
    if isinstance(source, np.ndarray):
        return array_to_rgb(source)
    raise CarError(f"An image must be a path, a PIL image or a numpy array, got {type(source).__name__}.")


def clean_phrases(texts) -> list[str]:
    """Phrases stripped, empty ones dropped; a string is one phrase. Refuses an empty list, more than
    MAX_PHRASES, a phrase that is not a string (None would be segmented as the word "None") and the
    same phrase twice (case and spacing aside: CLIP would split one score between the two)."""
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts or [])
    for i, t in enumerate(texts, start=1):
        if not isinstance(t, str):
            raise CarError(f"Phrase {i} is {t!r} ({type(t).__name__}), not a string: give each phrase as text.")
    phrases = [t.strip() for t in texts if t.strip()]
    if not phrases:
        raise CarError("The phrase list is empty: give at least one phrase to segment, e.g. ['cat', 'dog'].")
    if len(phrases) > MAX_PHRASES:
        raise CarError(f"{len(phrases)} phrases given; at most {MAX_PHRASES} fit one label map.")
    seen: dict[str, str] = {}
    for phrase in phrases:
        key = " ".join(phrase.lower().split())
        if key in seen:
            raise CarError(f"Phrase '{phrase}' is given twice (as '{seen[key]}' too): give each phrase once, "
                           f"since CaR would split one score between the copies.")
        seen[key] = phrase
    return phrases


@dataclass
class Segmentation:
    """What CaR found for K phrases on one H x W image."""

    image: np.ndarray  # [H, W, 3] uint8, the image as read (EXIF orientation applied)
    texts: list[str]  # the K phrases; phrase k has label id k + 1
    label_map: np.ndarray  # [H, W] int64: 0 = background, k = texts[k - 1]
    scores: list[float | None]  # final classifier score per phrase; None = pruned by the recurrence
    trace: list[dict]  # per step: live phrases, their scores, kept and pruned phrases
    timings: dict  # seconds: read, car, post, total
    resized: dict = field(default_factory=dict)  # {"resized_from": [H, W], "resized_to": [h, w]} above max_pixels
    notes: list[str] = field(default_factory=list)  # what the caller should know (a phrase cut at CLIP's context)

    @property
    def masks(self) -> np.ndarray:
        """[K, H, W] bool: masks[k] is phrase k's region (label id k + 1)."""
        return self.label_map[None] == np.arange(1, len(self.texts) + 1)[:, None, None]

    def pruned_at(self, k: int) -> int | None:
        """The step (1-based) whose pruning removed phrase k, None if it survived."""
        return next((entry["step"] for entry in self.trace if k in entry["pruned_ids"]), None)

    def phrases(self) -> list[dict]:
        """One record per phrase: label id, final score, pruned step, last score seen, area."""
        counts = np.bincount(self.label_map.ravel(), minlength=len(self.texts) + 1)
        out = []
        for k, text in enumerate(self.texts):
            seen = [e["scores"][e["live_ids"].index(k)] for e in self.trace if k in e["live_ids"] and e["scores"]]
            out.append({"text": text, "label": k + 1, "score": self.scores[k], "kept": self.scores[k] is not None,
                        "pruned_at_step": self.pruned_at(k), "last_score": seen[-1] if seen else None,
                        "pixels": int(counts[k + 1]), "area": float(counts[k + 1] / self.label_map.size)})
        return out

    def to_json(self) -> dict:
        return {"size": list(self.label_map.shape), "texts": list(self.texts), "phrases": self.phrases(),
                "trace": [{k: v for k, v in e.items() if not k.endswith("_ids")} for e in self.trace],
                "timings": dict(self.timings), **self.resized, **({"notes": list(self.notes)} if self.notes else {})}


def trace_records(result, texts: list[str]) -> list[dict]:
    """CarResult.trace -> JSON-ready steps with phrase names (ids kept for lookups)."""
    steps = []
    for n, step in enumerate(result.trace, start=1):
        scores = [round(float(s), 6) for s in np.asarray(step.scores).tolist()]
        kept = set(step.kept)
        pruned = [i for i in step.live if i not in kept] if scores else []
        steps.append({"step": n, "live": [texts[i] for i in step.live], "scores": scores,
                      "kept": [texts[i] for i in step.kept], "pruned": [texts[i] for i in pruned],
                      "zero_maps": bool(step.zero_maps),
                      "live_ids": list(step.live), "pruned_ids": pruned})
    return steps


def source_name(image) -> str | None:
    return str(image) if isinstance(image, (str, Path)) else None
