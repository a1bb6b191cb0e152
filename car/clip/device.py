"""Which device a CLIP runs on: a user's `--device` checked in one sentence before any model loads."""

from __future__ import annotations

from car.errors import CarError


def resolve_device(name: str | None) -> str:
    """None -> "cuda" if a GPU is there, else "cpu"; a named device is checked: it must parse as a torch
    device, and a CUDA device must exist on this machine (CarError otherwise)."""
    import torch

    if name is None or str(name).strip() == "":
        return "cuda" if torch.cuda.is_available() else "cpu"
    text = str(name).strip()
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise CarError(f"Unknown device '{text}': use cpu, cuda or cuda:N (or leave it out for cuda when a GPU "
                       f"is there).") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise CarError(f"Device '{text}' asked for, but this machine has no usable CUDA GPU: use --device cpu "
                           f"(or leave --device out).")
        if device.index is not None and device.index >= count:
            raise CarError(f"Device '{text}' asked for, but this machine has {count} CUDA GPU(s) "
                           f"(cuda:0..cuda:{count - 1}).")
    elif device.type not in ("cpu", "mps"):
        raise CarError(f"Device '{text}' is not supported here: use cpu, cuda or cuda:N.")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise CarError(f"Device '{text}' asked for, but Apple's MPS backend is not available: use --device cpu.")
    return text
