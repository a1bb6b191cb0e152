"""From query logits to a label map, as the peers decide (their official `postprocess_result`).

    probs   = softmax over queries of (logit_scale * cosine)          [Q, H, W]
    class   = max over the synonyms of each class                     [C, H, W]
    area    (SCLIP, VOC-21 only) foreground classes covering at most `area_threshold` of the
            foreground-predicted pixels get probability 0
    label   = argmax class; pixels whose best probability < `prob_threshold` become background (0)
"""

from __future__ import annotations

import numpy as np
import torch


def class_probabilities(logits: torch.Tensor, query_class: torch.Tensor, num_classes: int,
                        logit_scale: float) -> torch.Tensor:
    """logits [Q, H, W], query_class [Q] (class index of each query) -> probabilities [C, H, W]."""
    probs = torch.softmax(logit_scale * logits.float(), dim=0)  # [Q, H, W]
    out = probs.new_zeros((num_classes,) + probs.shape[1:])  # [C, H, W]
    index = query_class.to(probs.device).view(-1, 1, 1).expand_as(probs)
    return out.scatter_reduce(0, index, probs, reduce="amax", include_self=True)


def drop_small_classes(class_probs: torch.Tensor, label_ids: list[int], area_threshold: float) -> torch.Tensor:
    """Zero the probability of foreground classes predicted on <= area_threshold of the foreground pixels."""
    winner = class_probs.argmax(dim=0)  # [H, W]
    area = torch.bincount(winner.flatten(), minlength=class_probs.shape[0]).to(class_probs.dtype)  # [C]
    foreground = torch.tensor([lid != 0 for lid in label_ids], device=area.device)
    keep = (area > area_threshold * area[foreground].sum()) | ~foreground  # [C]
    return class_probs * keep.to(class_probs.dtype).view(-1, 1, 1)


def label_map(logits: torch.Tensor, query_class: list[int], label_ids: list[int], logit_scale: float,
              prob_threshold: float = 0.0, area_threshold: float | None = None) -> np.ndarray:
    """logits [Q, H, W] -> label map [H, W] int64 in dataset label ids (0 = background)."""
    probs = class_probabilities(logits, torch.as_tensor(query_class), len(label_ids), logit_scale)  # [C, H, W]
    if area_threshold:
        probs = drop_small_classes(probs, label_ids, area_threshold)
    best, winner = probs.max(dim=0)  # [H, W]
    labels = torch.as_tensor(label_ids, device=winner.device)[winner]  # [H, W]
    labels[best < prob_threshold] = 0
    return labels.cpu().numpy().astype(np.int64)
