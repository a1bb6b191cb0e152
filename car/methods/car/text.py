"""Text side of CaR: query forms and referring-expression cleaning (CAR_SPEC §2). The embeddings
come from car/clip/text.py's TextEncoder, shared with the peers."""

from __future__ import annotations

ORIGAMI = "a clean origami {}."  # step >= 2 proposal text and background-word text (§2.1, §2.2)


def origami(query: str) -> str:
    return ORIGAMI.format(query)


def clean_referring_expression(sentence: str) -> str:
    """§2.5: lower-case and delete the characters `"` and `/`; nothing else."""
    return sentence.lower().replace('"', "").replace("/", "")
