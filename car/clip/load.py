"""Load CLIP models through open_clip: pretrained tags, local checkpoints, or random init.

One entry point, `load_clip(spec)`, where `spec` is a backbone entry of the Hydra config:

    arch: ViT-B-16          # open_clip model name (or one of ours in model_configs/)
    pretrained: openai      # an open_clip tag | a local file (.pt/.pth/.bin/.safetensors) | null
    quick_gelu: true        # OpenAI weights were trained with QuickGELU

Checkpoint formats accepted for a local file:
  * open_clip / plain state dicts (optionally under "state_dict"), read with `weights_only=True`;
  * original OpenAI TorchScript archives (`ViT-B-16.pt` from openaipublic): TorchScript cannot be
    read with `weights_only`, so these go through `torch.jit.load`, which runs no Python pickle
    code; their state dict uses open_clip's key names already.
In every format, OpenAI's three integer scalars `input_resolution`, `context_length` and
`vocab_size` (architecture facts, not weights) are dropped, as OpenAI's own `build_model` does;
any other key the architecture lacks is still refused.
Offline with a missing weight, the error is one sentence naming the weight and the override that
supplies a local file (`CarError`). So is a file that cannot be a checkpoint: a directory, an empty
or truncated file, a zip dressed as a TorchScript archive, a pickle named `.safetensors`, a
checkpoint whose entries are not all tensors (e.g. a training checkpoint with optimizer state).
"""

from __future__ import annotations

import logging
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import open_clip
import torch

from car.clip.stems import apply_stem
from car.clip.weights import describe_missing, is_file_spec, locate, why_missing
from car.errors import CarError

log = logging.getLogger(__name__)

MODEL_CONFIG_DIR = Path(__file__).parent / "model_configs"
_registered = False


@dataclass
class ClipModel:
    """An open_clip CLIP plus what the CaR stages need to know about it."""

    model: torch.nn.Module  # open_clip.CLIP
    tokenizer: object  # open_clip tokenizer: list[str] -> LongTensor [n, context]
    arch: str
    pretrained: str | None
    image_size: int  # square input size the visual tower was trained at
    patch_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def visual(self) -> torch.nn.Module:
        return self.model.visual

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.exp())

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """The visual tower's weight dtype: float32, or float16 in the fp16-weights mode (Q32)."""
        return next(p for p in self.model.visual.parameters() if p.is_floating_point()).dtype


def register_model_configs() -> None:
    """Make our own architectures (the tiny CLIP) known to open_clip by name."""
    global _registered
    if not _registered and MODEL_CONFIG_DIR.is_dir():
        open_clip.add_model_config(MODEL_CONFIG_DIR)
        _registered = True


_is_file_spec = is_file_spec


class _NoRandomInitNotice(logging.Filter):
    """Drops open_clip's "No pretrained weights loaded ... initialized randomly": every model is
    created empty here and then gets its weights from us (or is random with our own warning)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("No pretrained weights loaded for model")


def _create_model(arch: str, quick_gelu: bool, **kwargs) -> torch.nn.Module:
    """open_clip's model without weights (open_clip logs through the root logger)."""
    notice = _NoRandomInitNotice()
    logging.getLogger().addFilter(notice)
    try:
        return open_clip.create_model(arch, pretrained=None, force_quick_gelu=quick_gelu, **kwargs)
    finally:
        logging.getLogger().removeFilter(notice)


def _preprocess_of(tag_cfg: dict) -> dict:
    """The image normalisation open_clip would set for a pretrained tag (mean, std, ...)."""
    return {k: tag_cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if tag_cfg.get(k) is not None}


def _is_torchscript_archive(path: Path) -> bool:
    """A zip holding `<root>/code/...` or `<root>/constants.pkl` (only a guess: torch.jit.load decides)."""
    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as archive:
            return any(name.split("/", 1)[-1].startswith(("code/", "constants.pkl")) for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):  # a damaged zip: torch.load reports it
        return False


def _reason(err: Exception) -> str:
    """The exception as a short clause for a one-sentence message (first line, no final period)."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    text = text.split("  (Could this error message be improved", 1)[0].split(". ", 1)[0].rstrip(". ")
    return f"{type(err).__name__}: {text[:150]}" if text else type(err).__name__


def _head(path: Path, size: int = 8) -> bytes:
    with open(path, "rb") as f:
        return f.read(size)


def _read_safetensors(path: Path) -> dict:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as err:  # SafetensorError on a bad header, OSError, ...
        head = _head(path)
        if head.startswith(b"PK") or head[:1] == b"\x80":  # torch.save's zip or a bare pickle
            raise CarError(f"CLIP checkpoint '{path}' is named .safetensors but holds a PyTorch pickle "
                           f"({'zip archive' if head.startswith(b'PK') else 'pickle stream'}); rename it to .pt "
                           f"so that it is read as one.") from None
        raise CarError(f"CLIP checkpoint '{path}' is not a readable safetensors file ({_reason(err)}): it is "
                       f"truncated or corrupt, fetch it again.") from None


def _read_torchscript(path: Path) -> dict:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated (still the only reader)
            return torch.jit.load(str(path), map_location="cpu").state_dict()
    except Exception as err:  # RuntimeError from the archive reader
        raise CarError(f"CLIP checkpoint '{path}' looks like a TorchScript archive (it holds code/ or "
                       f"constants.pkl) but torch.jit.load cannot read it ({_reason(err)}): it is truncated, "
                       f"corrupt or not TorchScript, fetch the original file again.") from None


def _read_pickle(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle.UnpicklingError, RuntimeError on corrupt zips, EOFError, ...
        if "weights only" in str(err).lower() or "weights_only" in str(err):
            raise CarError(
                f"CLIP checkpoint '{path}' is not a plain tensor state dict loadable with "
                f"weights_only=True ({type(err).__name__}); re-save it as a state dict."
            ) from None
        what = "a truncated or corrupt zip archive" if _head(path).startswith(b"PK") else \
            "truncated, corrupt or not a PyTorch checkpoint"
        raise CarError(f"CLIP checkpoint '{path}' is {what} ({_reason(err)}); fetch it again.") from None


OPENAI_SCALAR_KEYS = ("input_resolution", "context_length", "vocab_size")
_INT_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


def _drop_openai_scalars(state: dict) -> dict:
    """Remove OpenAI's int entries (e.g. input_resolution = 224); only integer scalars go."""

    def is_int_scalar(value) -> bool:
        if isinstance(value, int) and not isinstance(value, bool):
            return True
        return isinstance(value, torch.Tensor) and value.ndim == 0 and value.dtype in _INT_DTYPES

    return {k: v for k, v in state.items() if not (k in OPENAI_SCALAR_KEYS and is_int_scalar(v))}


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file without executing pickled code; returns an open_clip state dict."""
    path = Path(path)
    if path.is_dir():
        raise CarError(f"CLIP checkpoint '{path}' is a directory, not a checkpoint file; name the weights file in it.")
    if not path.is_file():
        raise CarError(f"CLIP checkpoint file '{path}' does not exist.")
    if path.stat().st_size == 0:
        raise CarError(f"CLIP checkpoint '{path}' is an empty file (0 bytes): its download or copy did not finish, "
                       f"fetch it again.")
    if path.suffix == ".safetensors":
        state = _read_safetensors(path)
    elif _is_torchscript_archive(path):
        state = _read_torchscript(path)
    else:
        state = _read_pickle(path)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict) or not state:
        raise CarError(f"CLIP checkpoint '{path}' holds no state dict.")
    state = _drop_openai_scalars({str(k).removeprefix("module."): v for k, v in state.items()})
    odd = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if odd:
        raise CarError(f"CLIP checkpoint '{path}' has {len(odd)} non-tensor entr{'y' if len(odd) == 1 else 'ies'} "
                       f"(e.g. '{odd[0]}'), so it is not a model state dict; save the model's state_dict() alone.")
    return state


def _load_weights_file(model: torch.nn.Module, path: str, arch: str) -> None:
    state = read_state_dict(path)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    if ("logit_scale" in state and state["logit_scale"].ndim != model.logit_scale.ndim
            and state["logit_scale"].numel() == model.logit_scale.numel()):
        state["logit_scale"] = state["logit_scale"].reshape(model.logit_scale.shape)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # size mismatches
        first = str(err).split("size mismatch for ", 1)[-1].split(":")[0]
        raise CarError(
            f"CLIP checkpoint '{path}' does not match architecture {arch} (tensor shapes differ, "
            f"e.g. {first}); check backbone.*.arch."
        ) from None
    missing = [k for k in result.missing_keys if k != "logit_bias"]
    if missing or result.unexpected_keys:
        raise CarError(
            f"CLIP checkpoint '{path}' does not match architecture {arch} "
            f"({len(missing)} missing, {len(result.unexpected_keys)} unexpected keys, "
            f"e.g. {(missing + result.unexpected_keys)[:2]}); check backbone.*.arch."
        )


def _load_tag(spec, arch: str, tag: str, quick_gelu: bool, role: str) -> torch.nn.Module:
    """An open_clip tag: from its file in the local cache (no network call at all), else downloaded
    by open_clip when the host answers, else one sentence naming the override for a local file."""
    weights = locate(spec, role)
    if weights.kind == "cached":
        model = _create_model(arch, quick_gelu, force_preprocess_cfg=_preprocess_of(weights.tag_cfg))
        apply_stem(model, arch)
        _load_weights_file(model, str(weights.path), arch)
        return model
    if weights.kind == "missing":
        raise CarError(f"CLIP weights {describe_missing(weights, [role])} ({why_missing(weights)}); supply a local "
                       f"file with backbone.{role}.pretrained=/path/to/{arch}.pt (an OpenAI or open_clip checkpoint).")
    try:
        return open_clip.create_model(arch, pretrained=tag, force_quick_gelu=quick_gelu)
    except Exception as err:
        raise CarError(
            f"Pretrained CLIP weights '{tag}' for {arch} are not in the local cache and their download failed "
            f"({type(err).__name__}); retry, or pass backbone.{role}.pretrained=/path/to/{arch}.pt "
            f"(an OpenAI or open_clip checkpoint)."
        ) from None


def load_clip(spec, device: str | torch.device = "cpu", role: str = "backbone") -> ClipModel:
    """Build the model named by `spec` (a mapping with arch/pretrained/quick_gelu) on `device`.

    `role` ("proposal" or "classifier") only names the config key in error messages.
    """
    register_model_configs()
    arch = str(spec["arch"])
    pretrained = spec.get("pretrained")
    pretrained = None if pretrained in (None, "", "null", "none") else str(pretrained)
    quick_gelu = bool(spec.get("quick_gelu", False))
    if arch not in open_clip.list_models():
        raise CarError(f"Unknown CLIP architecture '{arch}' for backbone.{role}.arch; see open_clip.list_models().")

    if pretrained is None:
        model = _create_model(arch, quick_gelu)
        log.warning(
            "\n%s\n!! backbone.%s: %s is RANDOMLY INITIALISED (pretrained=null). Its masks and\n"
            "!! scores are meaningless; use this only for tests and timing.\n%s",
            "!" * 78, role, arch, "!" * 78,
        )
        apply_stem(model, arch)
    elif _is_file_spec(pretrained):
        if Path(pretrained).is_dir():
            raise CarError(
                f"CLIP weights '{pretrained}' for backbone.{role} ({arch}) is a directory, not a checkpoint file; "
                f"point backbone.{role}.pretrained at the .pt, .pth, .bin or .safetensors file in it."
            )
        if not Path(pretrained).is_file():
            raise CarError(
                f"CLIP weights file '{pretrained}' for backbone.{role} ({arch}) does not exist; "
                f"point backbone.{role}.pretrained=/path/to/weights.pt at an existing checkpoint."
            )
        model = _create_model(arch, quick_gelu)
        apply_stem(model, arch)
        _load_weights_file(model, pretrained, arch)
    else:
        model = _load_tag(spec, arch, pretrained, quick_gelu, role)

    model = model.to(device).eval().requires_grad_(False)
    visual = model.visual
    image_size = visual.image_size if isinstance(visual.image_size, int) else visual.image_size[0]
    patch = visual.patch_size if isinstance(visual.patch_size, int) else visual.patch_size[0]
    mean = getattr(visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN
    std = getattr(visual, "image_std", None) or open_clip.OPENAI_DATASET_STD
    return ClipModel(
        model=model,
        tokenizer=open_clip.get_tokenizer(arch),
        arch=arch,
        pretrained=pretrained,
        image_size=int(image_size),
        patch_size=int(patch),
        mean=tuple(mean),
        std=tuple(std),
    )
