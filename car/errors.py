"""User-facing errors: one sentence that says what is missing and how to supply it.

`evaluate.py` catches `CarError` and prints only its message (no traceback), exiting non-zero.
"""


class CarError(RuntimeError):
    """An error caused by the user's inputs (weights, data, config), not by a bug."""
