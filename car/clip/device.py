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


ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "auto")


def check_accelerator(accelerator: str, devices="auto") -> None:
    """A run's `trainer.accelerator` / `trainer.devices`, checked before any model loads (CarError)."""
    name = str(accelerator).lower()
    if name not in ACCELERATORS:
        raise CarError(f"Unknown trainer.accelerator '{accelerator}': use one of {', '.join(ACCELERATORS)} "
                       f"(or trainer=cpu / trainer=gpu).")
    if name not in ("gpu", "cuda"):
        return
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise CarError(f"trainer.accelerator={accelerator} asks for a CUDA GPU, but this machine has none: run with "
                       f"trainer=cpu.")
    wanted = devices if isinstance(devices, int) and not isinstance(devices, bool) else None
    if wanted is not None and wanted > count:
        raise CarError(f"trainer.devices={wanted} asks for {wanted} GPUs, but this machine has {count}: "
                       f"set trainer.devices={count} or fewer.")
