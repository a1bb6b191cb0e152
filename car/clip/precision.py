"""The official fp16-weights mode (quirk Q32): both CLIPs stored and run in float16.

On CUDA the official code loads OpenAI CLIP with `clip.load(..., device="cuda")`, which keeps the
checkpoint's float16 weights: every tower activation, the gradCAM backward included, is float16.
(On CPU the official code casts the model to float32.) `car.precision=fp16_weights` reproduces
that: `to_fp16_weights` casts a model's floating parameters and buffers to float16 in place,
except `logit_scale` (and `logit_bias`), which OpenAI's conversion leaves in float32 (its
exponential is taken in float32).

What runs in float16 then (car/methods/car): the visual and text towers (forward, and the gradCAM
backward through the last block), the gradCAM softmax over the texts, and the mean of the eight
attention maps of the affinity (the official code averages the stacked float16 maps before casting
to float32). What stays float32: everything after a tower (text normalisation, gradCAM channel
weights and CAM min-max, Sinkhorn balancing and propagation, the classifier's two softmaxes), and
the dense CRF on the CPU, as in every mode. LayerNorm runs on float16 inputs with float32
accumulation (torch's kernels), where OpenAI's LayerNorm upcasts explicitly; the outputs are
rounded to float16 in both.

OpenAI's weights are float16 numbers, so the cast is lossless for them (and for the golden random
weights); open_clip random initialisations and our tiny CLIP are float32 and get rounded.
On the CPU torch has float16 kernels for every op CaR uses (torch 2.1+), but they are slow: this
mode is for GPUs; on the CPU it is only tested (micro/tiny backbones).
"""

from __future__ import annotations

import torch

from car.clip.load import ClipModel

KEEP_FP32 = ("logit_scale", "logit_bias")  # OpenAI's convert_weights leaves these in float32


def to_fp16_weights(clip: ClipModel) -> ClipModel:
    """Cast the model's floating weights to float16 in place (idempotent); returns `clip`."""
    model = clip.model
    model.half()
    for name in KEEP_FP32:
        param = getattr(model, name, None)
        if isinstance(param, torch.Tensor) and param.is_floating_point():
            param.data = param.data.float()
    return clip
