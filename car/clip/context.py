"""CLIP reads at most its context length of tokens (77 for OpenAI's CLIPs): longer phrases are cut off.

`overlong_phrases(tokenizer, phrases)` finds them, so that every entry point can say so instead of
segmenting a silently truncated phrase (the text encoders truncate, car/methods/car/text.py).
"""

from __future__ import annotations

DEFAULT_CONTEXT = 77  # OpenAI CLIP's text context (start and end tokens included)


def token_count(tokenizer, phrase: str) -> int:
    """Tokens of `phrase` with the start and end tokens, as the text encoder sees them before truncation."""
    return len(tokenizer.encode(phrase)) + 2


def context_length(tokenizer) -> int:
    return int(getattr(tokenizer, "context_length", None) or DEFAULT_CONTEXT)


def overlong_phrases(tokenizer, phrases: list[str]) -> list[str]:
    """One sentence per phrase longer than the tokenizer's context (empty if none is)."""
    if not hasattr(tokenizer, "encode"):
        return []
    limit = context_length(tokenizer)
    notes = []
    for phrase in phrases:
        n = token_count(tokenizer, phrase)
        if n > limit:
            shown = phrase if len(phrase) <= 40 else phrase[:39] + "…"
            notes.append(f"phrase '{shown}' is {n} tokens long; CLIP reads only its first {limit} tokens "
                         f"(start and end included), the rest is cut off.")
    return notes
