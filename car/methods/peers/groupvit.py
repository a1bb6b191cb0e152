"""GroupViT (Xu et al., CVPR 2022; arXiv 2202.11094), the zero-shot baseline of CaR's tables.

The model is HuggingFace transformers' `GroupViTModel` (weights: a hub id such as
nvidia/groupvit-gcc-yfcc, a local folder written by `save_pretrained` or a hub snapshot, or null for
a random initialisation of `method.model.config`). The segmentation protocol is the official one
(NVlabs/GroupViT @ 13b7861, segmentation/evaluation/group_vit_seg.py and its dataset configs), on
our data loaders, metrics and predict-only Lightning module:

  input     ImageNet mean/std; short side 448 (long side at most 2048); windows of 448 every 224
            (mmseg slide inference: window outputs averaged, then resized to the image)
  window    the soft assignments of the grouping stages, chained (patches -> 64 -> 8 groups) and
            resized to the window; each pixel joins its arg-max group
            group-class affinity = softmax over classes of (scale * cos(group, class)), restricted to
            the `top_k` classes of the whole window's embedding (softmax again, times the unrestricted
            one); scale = exp(logit_scale) clamped at 100
            pixel score of a class = its group's affinity; with a background class (datasets that
            score one: VOC-21, Context-60, COCO-Object) a pixel whose best score is below
            min(bg_thresh, the largest affinity) is background
  classes   one template, "a photo of a {}." (the `simple` set); class embedding = normalised mean
            over templates; names: the dataset config's (mmseg's), or `method.class_names`

Text is tokenised with open_clip's copy of CLIP's BPE (the tokenizer GroupViT was trained with), so
no tokenizer files are needed. Differences from the official code: windows whose sides are not
multiples of the patch size are zero-padded around the centre (as for the other peers; mmseg crops
the remainder), and GroupViT's own ViT positional table is resized by transformers (bicubic).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from car.errors import CarError
from car.methods.peers.segmenter import AUTOCAST, InputGeometry, Refinement
from car.methods.peers.sliding import resize_short_side, sliding_logits
from car.methods.peers.text import ClassQueries

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # GroupViT's img_norm_cfg (123.675, 116.28, 103.53) / 255
IMAGENET_STD = (0.229, 0.224, 0.225)
INSTALL = "pip install 'transformers>=4.40'"


def load_groupvit(pretrained: str | None, config_overrides: dict | None = None, device: str | torch.device = "cpu"):
    """GroupViTModel in eval mode: from a local folder or hub id, or randomly initialised (pretrained=None)."""
    try:
        from transformers import GroupViTConfig, GroupViTModel
    except ImportError as err:
        raise CarError(f"method=groupvit needs the transformers package ({err}): {INSTALL}.") from None
    if pretrained is None:
        log.warning("GroupViT is RANDOMLY INITIALISED (method.model.pretrained=null): tests and timing only")
        try:
            config = GroupViTConfig(**(config_overrides or {}))
        except Exception as err:  # noqa: BLE001 - transformers' validators raise several kinds
            reason = str(err).splitlines()[0].rstrip(".:")
            raise CarError(f"method.model.config is not a GroupViT configuration ({reason}).") from None
        torch.manual_seed(0)
        model = GroupViTModel(config)
    else:
        source = str(Path(pretrained).expanduser()) if Path(str(pretrained)).expanduser().exists() else str(pretrained)
        try:
            model = GroupViTModel.from_pretrained(source)
        except (OSError, ValueError) as err:
            kind = "folder" if Path(source).exists() else "hub id"
            raise CarError(
                f"GroupViT weights {source!r} ({kind}) could not be loaded ({str(err).splitlines()[0].rstrip('.')}): "
                f"offline, download them once (huggingface-cli download nvidia/groupvit-gcc-yfcc) or set "
                f"method.model.pretrained=/path/to/a/saved/model/folder."
            ) from None
    return model.eval().to(device)


def open_clip_tokenize(texts: list[str], context_length: int) -> torch.Tensor:
    """CLIP BPE ids [N, context_length] (start and end tokens, zero padding), as GroupViT's tokenizer."""
    from open_clip.tokenizer import tokenize

    return tokenize(texts, context_length=context_length)


class GroupViTSegmenter:
    """Same interface as PeerSegmenter: propose (model part) -> finish (CPU part); cpu_part()."""

    name = "groupvit"
    budget = None  # it sizes its own input (geometry)
    sam_masks = None  # SAM refines CaR's masks only

    def __init__(self, model, classes: ClassQueries, templates: list[str], geometry: InputGeometry,
                 bg_thresh: float | None, top_k: int = 5, logit_scale_max: float = 100.0, precision: str = "fp32"):
        if classes.has_background and bg_thresh is None:
            raise CarError("method.bg_thresh is null, but this dataset scores a background class: set the "
                           "dataset's bg_thresh in conf/method/groupvit.yaml per_dataset (VOC 0.95, Context 0.35).")
        self.model = model
        self.classes = classes
        self.templates = templates
        self.geometry = geometry
        self.bg_thresh = bg_thresh
        self.top_k = top_k
        self.logit_scale_max = logit_scale_max
        self.precision = precision
        self.refinement = Refinement()  # none (metrics.json's peer record)
        self._text: torch.Tensor | None = None  # [K, E] foreground class embeddings

    @property
    def models(self) -> list[torch.nn.Module]:
        return [] if self.model is None else [self.model]

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def __call__(self, sample: dict) -> tuple[np.ndarray, dict]:
        logits, info = self.propose(sample)
        return self.finish(sample["image"], logits), info

    # ------------------------------------------------------------------ text

    @torch.no_grad()
    def class_embeddings(self) -> torch.Tensor:
        """Unit-norm foreground class embeddings [K, E] (one per class; synonyms are not used)."""
        if self._text is not None and self._text.device == self.device:
            return self._text
        names = self.classes.queries[1:] if self.classes.has_background else self.classes.queries
        texts = [t.format(name) for name in names for t in self.templates]
        length = int(self.model.config.text_config.max_position_embeddings)
        ids = open_clip_tokenize(texts, length).to(self.device)  # [K*T, L]
        out = self.model.get_text_features(input_ids=ids, attention_mask=(ids != 0).long())
        feats = out.pooler_output if hasattr(out, "pooler_output") else out  # [K*T, E]
        feats = feats.float().reshape(len(names), len(self.templates), -1).mean(dim=1)  # [K, E]
        self._text = F.normalize(feats, dim=-1)
        return self._text

    # ------------------------------------------------------------------ image

    def normalise(self, image: np.ndarray) -> torch.Tensor:
        """uint8 [H, W, 3] -> resized, ImageNet-normalised float [1, 3, H', W'] on the model's device."""
        x = torch.from_numpy(np.ascontiguousarray(image)).to(self.device).permute(2, 0, 1)[None].float() / 255
        x = resize_short_side(x, self.geometry.short_side, self.geometry.max_long_side)
        mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std

    def window_scores(self, window: torch.Tensor) -> torch.Tensor:
        """One window [1, 3, h, w] -> class scores [1, C, h, w] at its own resolution (C with background)."""
        from transformers.models.groupvit.modeling_groupvit import get_grouping_from_attentions

        vision = self.model.vision_model
        tokens = vision.embeddings(window, interpolate_pos_encoding=True)  # [1, N, D]
        encoded = vision.encoder(hidden_states=tokens, output_attentions=True, return_dict=True)
        groups = vision.layernorm(encoded.last_hidden_state)  # [1, G, D]
        grouping = get_grouping_from_attentions(encoded.attentions, window.shape[-2:])[0]  # [G, h, w] soft
        project = self.model.visual_projection
        group_emb = F.normalize(project(groups[0]).float(), dim=-1)  # [G, E]
        image_emb = F.normalize(project(groups.mean(dim=1)).float(), dim=-1)  # [1, E]
        text = self.class_embeddings()  # [K, E]
        scale = self.model.logit_scale.exp().clamp(max=self.logit_scale_max).float()
        affinity = group_emb @ text.T * scale  # [G, K]
        plain = affinity.softmax(dim=-1)
        whole = (image_emb @ text.T * scale).softmax(dim=-1)  # [1, K]
        keep = torch.zeros_like(whole, dtype=torch.bool)
        keep.scatter_(-1, whole.topk(min(self.top_k, text.shape[0]), dim=-1).indices, True)
        affinity = affinity.masked_fill(~keep, float("-inf")).softmax(dim=-1) * plain  # [G, K]
        onehot = F.one_hot(grouping.argmax(dim=0), grouping.shape[0]).float()  # [h, w, G]
        scores = (onehot @ affinity).permute(2, 0, 1)  # [K, h, w]
        if self.classes.has_background:
            threshold = min(float(self.bg_thresh), float(affinity.max()))
            background = (scores.max(dim=0).values < threshold).float()[None]  # [1, h, w]
            scores = torch.cat([background, scores])
        return scores[None]

    @torch.no_grad()
    def propose(self, sample: dict) -> tuple[np.ndarray, dict]:
        """The model part: averaged window scores [C, H', W'] (float32) at the resized resolution."""
        image = self.normalise(sample["image"])
        dtype = AUTOCAST.get(self.precision)
        cuda = image.device.type == "cuda"
        amp = torch.autocast("cuda", dtype=dtype) if dtype is not None and cuda else contextlib.nullcontext()
        patch = int(self.model.config.vision_config.patch_size)
        with amp:
            scores = sliding_logits(self.window_scores, image, patch, self.geometry.crop, self.geometry.stride)
        info = {"steps": [1], "kept": [list(self.classes.label_ids)]}
        return scores.float().cpu().numpy(), info

    def finish(self, image: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """The CPU part: scores [C, H', W'] -> label map [H, W] int64 (bilinear to the image, arg-max)."""
        h, w = image.shape[:2]
        full = F.interpolate(torch.from_numpy(scores)[None], size=(h, w), mode="bilinear", align_corners=False)[0]
        ids = torch.as_tensor(self.classes.label_ids)
        return ids[full.argmax(dim=0)].numpy().astype(np.int64)

    def cpu_part(self) -> GroupViTSegmenter:
        twin = GroupViTSegmenter.__new__(GroupViTSegmenter)
        twin.__dict__.update(self.__dict__)
        twin.model, twin._text = None, None
        return twin


def groupvit_classes(dataset_name: str, class_names: list[str], override: list[str] | None,
                     with_background: bool) -> ClassQueries:
    """The class names GroupViT embeds: `method.class_names` or the dataset config's (labels 1..K)."""
    names = list(override) if override else list(class_names[1:])
    if len(names) != len(class_names) - 1:
        raise CarError(f"method.class_names has {len(names)} names, dataset '{dataset_name}' has "
                       f"{len(class_names) - 1} classes besides slot 0: fix conf/method/groupvit.yaml per_dataset.")
    ids = list(range(1, len(class_names)))
    source = "method.class_names" if override else "dataset config"
    if with_background:
        return ClassQueries(["background"] + names, list(range(len(names) + 1)), [0] + ids, source)
    return ClassQueries(names, list(range(len(names))), ids, source)
