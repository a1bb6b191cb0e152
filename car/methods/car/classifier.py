"""Mask classifier: score each proposal by looking at its visually prompted image (CAR_SPEC §5).

    prompted images K x [H, W, 3] + live query strings -> scores [K] in (0, 1]

score_k is the "double softmax" diagonal: for each template t a softmax over the live queries,
summed over templates, then a second softmax; the entry of map k against its own query k.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from car.clip.load import ClipModel
from car.clip.surgery import encode_cls
from car.clip.text import TextEncoder, fill


def classifier_preprocess(image: np.ndarray, clip: ClipModel) -> torch.Tensor:
    """§5.1: PIL bicubic resize of the shorter side to S, centre crop S x S, normalise. -> [3, S, S]."""
    size = clip.image_size
    pil = Image.fromarray(image)
    w, h = pil.size
    short, long = min(w, h), max(w, h)
    new_long = int(size * long / short)  # torchvision's rule for Resize(int)
    new_w, new_h = (size, new_long) if w <= h else (new_long, size)
    pil = pil.resize((new_w, new_h), Image.BICUBIC)
    left, top = int(round((new_w - size) / 2.0)), int(round((new_h - size) / 2.0))
    pil = pil.crop((left, top, left + size, top + size))
    x = torch.from_numpy(np.asarray(pil, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return (x - torch.tensor(clip.mean).view(3, 1, 1)) / torch.tensor(clip.std).view(3, 1, 1)


def template_probs(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: float) -> torch.Tensor:
    """image_emb [K, D], text_emb [T, J, D] (template t, query j) -> P [T, K, J]: per template, the
    softmax over the J texts of image k's similarity with each."""
    logits = logit_scale * torch.einsum("kd,tjd->tkj", image_emb.float(), text_emb.float())  # [T, K, J]
    return logits.softmax(dim=-1)


def double_softmax_scores(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: float) -> torch.Tensor:
    """image_emb [K, D], text_emb [T, J, D] (template t, query j) -> score matrix Q [K, J].

    T = 1 gives the single softmax P_1 (referring mode); T > 1 the double softmax.
    """
    per_template = template_probs(image_emb, text_emb, logit_scale)  # P_t[k, j]
    if text_emb.shape[0] == 1:
        return per_template[0]
    return per_template.sum(dim=0).softmax(dim=-1)  # Q[k, j] = softmax_j Σ_t P_t[k, j]


class MaskClassifier:
    """Scores prompted images against the live queries.

    Args:
        clip: the classifier CLIP (ViT-L/14 for semantic datasets, ViT-B/16 for referring).
        templates: classifier templates with "{}" (T = 15 semantic); empty -> ["a clean origami {}."].
        skip_last_block: official quirk Q1 (CLS read after block L-1).
        posemb_fp16_round: official quirk Q3 (positional table rounded to fp16, as in the proposals).
        batch_size: prompted images per forward pass.
    """

    def __init__(self, clip: ClipModel, templates, skip_last_block: bool = True, batch_size: int = 32,
                 posemb_fp16_round: bool = True):
        self.clip = clip
        self.templates = list(templates) or ["a clean origami {}."]
        self.skip_last_block = skip_last_block
        self.posemb_fp16_round = posemb_fp16_round
        self.batch_size = batch_size
        self.text = TextEncoder(clip)

    @torch.no_grad()
    def encode_images(self, images: list[np.ndarray]) -> torch.Tensor:
        """K prompted images -> unit-norm embeddings [K, D] (each image encoded once, Q4)."""
        out = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            batch = torch.stack([classifier_preprocess(im, self.clip) for im in chunk])
            out.append(encode_cls(self.clip.visual, batch.to(self.clip.device, self.clip.dtype), self.skip_last_block,
                                  self.posemb_fp16_round).float())
        return torch.cat(out)

    def __call__(self, images: list[np.ndarray], queries: list[str]) -> torch.Tensor:
        """images: K prompted images, image k made from query k's map; queries: the J >= K
        query strings competing in the softmax (J = K except under quirk Q15). -> scores [K]."""
        return self.score(images, self.texts(queries))

    def texts(self, queries: list[str]) -> list[list[str]]:
        """The text table texts[t][j]: template t filled verbatim with query j."""
        return [[fill(t, q) for q in queries] for t in self.templates]

    def text_table(self, texts: list[list[str]]) -> torch.Tensor:
        """Embeddings of a text table texts[t][j] -> [T, J, D]."""
        flat = [text for row in texts for text in row]
        return self.text(flat).reshape(len(texts), len(texts[0]), -1)

    def score(self, images: list[np.ndarray], texts: list[list[str]]) -> torch.Tensor:
        """Scores from an explicit text table texts[t][j] (template t, query j). -> [K] diagonal.

        With one competing query (J = 1, so K <= 1) every softmax runs over a single text and the
        score is exactly 1 whatever the image (tests/test_classifier.py): no image is encoded then.
        This is the last step of most recurrences on one object and every step of a referring unit
        with one expression; the official code encodes the image and gets the same 1.0."""
        if images and len(texts[0]) == 1:
            return torch.ones(len(images))
        q = double_softmax_scores(self.encode_images(images), self.text_table(texts), self.clip.logit_scale)  # [K, J]
        return torch.diagonal(q).float().cpu()  # q[k, k]: image k against its own query (J >= K)
