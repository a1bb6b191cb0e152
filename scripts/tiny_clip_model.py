"""The tiny CLIP of the shapes world: building it, its three CaR forward paths, measuring, saving.

Used by scripts/train_tiny_clip.py (training) and importable on its own to measure weights:

    from tiny_clip_model import build_model, evaluate      # with scripts/ on sys.path
"""

from __future__ import annotations

import hashlib
import io
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, Path(__file__).resolve().parent):  # the package, and the data module beside this file
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import open_clip  # noqa: E402
from tiny_clip_data import LABELS, apply_prompt, to_tensor  # noqa: E402

from car.clip.stems import apply_stem  # noqa: E402
from car.data.shapes import CLASSES, render_scene  # noqa: E402

ARCH = "car-tiny-vit"
MODEL_CONFIG_DIR = ROOT / "car" / "clip" / "model_configs"
C = len(CLASSES)
# CaR's 15 semantic templates (../shared/data/class_names/car/semantic_templates.txt)
CAR_TEMPLATES = [
    "a clean origami {}.",
    "a photo of a {}.",
    "This is a photo of a {}",
    "There is a {} in the scene",
    "There is the {} in the scene",
    "a photo of a {} in the scene",
    "a photo of a small {}.",
    "a photo of a medium {}.",
    "a photo of a large {}.",
    "This is a photo of a small {}.",
    "This is a photo of a medium {}.",
    "This is a photo of a large {}.",
    "There is a small {} in the scene.",
    "There is a medium {} in the scene.",
    "There is a large {} in the scene.",
]
TRAIN_TEMPLATES = ["{}"] + CAR_TEMPLATES + ["a {}.", "the {}.", "a picture of a {}."]


# --------------------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------------------
def build_model():
    open_clip.add_model_config(MODEL_CONFIG_DIR)
    model = open_clip.create_model(ARCH, pretrained=None)
    apply_stem(model, ARCH)  # the conv stem declared in model_configs/car-tiny-vit.stem.json
    tokenizer = open_clip.get_tokenizer(ARCH)
    return model, tokenizer


def visual_trunk(visual, images: torch.Tensor) -> torch.Tensor:
    """Tokens [B, 1+N, W] after blocks 1..L-1 (the input of the last block, where gradCAM looks)."""
    x = visual.conv1(images)
    b, c, h, w = x.shape
    x = x.reshape(b, c, h * w).permute(0, 2, 1)
    x = torch.cat([visual.class_embedding.to(x.dtype).expand(b, 1, c), x], dim=1)
    x = visual.ln_pre(x + visual.positional_embedding.to(x.dtype))
    for blk in visual.transformer.resblocks[:-1]:
        x = blk(x)
    return x


def visual_paths(visual, images: torch.Tensor, tokens: bool = False):
    """Returns normalised embeddings (cls_L, mean_patch_L, cls_{L-1}), each [B, D]; with
    tokens=True also every patch token after all blocks, ln_post @ proj, normalised [B, N, D]."""
    x = visual_trunk(visual, images)  # [B, 1+N, W] after blocks 1..L-1
    cls_prev = x[:, 0]
    x = visual.transformer.resblocks[-1](x)
    cls_l = visual.ln_post(x[:, 0]) @ visual.proj
    patches = visual.ln_post(x[:, 1:]) @ visual.proj  # [B, N, D]
    mean_l = visual.ln_post(x[:, 1:]).mean(1) @ visual.proj
    cls_p = visual.ln_post(cls_prev) @ visual.proj
    paths = (F.normalize(cls_l, dim=-1), F.normalize(mean_l, dim=-1), F.normalize(cls_p, dim=-1))
    return (*paths, F.normalize(patches, dim=-1)) if tokens else paths


def text_embed(model, tokenizer, words, templates):
    texts = [t.format(w) for w, t in zip(words, templates)]
    return F.normalize(model.encode_text(tokenizer(texts)), dim=-1)


@torch.no_grad()
def template_avg_text(model, tokenizer, words, templates=CAR_TEMPLATES):
    out = []
    for w in words:
        e = F.normalize(model.encode_text(tokenizer([t.format(w) for t in templates])), dim=-1).mean(0)
        out.append(F.normalize(e, dim=-1))
    return torch.stack(out)


# --------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------
@torch.no_grad()
def evaluate(model, tokenizer, size=64, seed=0, n_single=500, n_multi=300, bs=100):
    """Zero-shot accuracies on val-stream scenes (disjoint from training seeds)."""
    model.eval()
    tcls = template_avg_text(model, tokenizer, CLASSES)
    tall = template_avg_text(model, tokenizer, LABELS)
    # single-object scenes
    imgs, ys = [], []
    for i in range(n_single):
        sc = render_scene(np.random.SeedSequence([seed, 1, 1, i]), size, num_objects=1)
        imgs.append(sc["image"])
        ys.append(sc["objects"][0][0] - 1)
    ys = torch.tensor(ys)
    preds = {"c": [], "a": [], "b": [], "b_raw_name": []}
    traw = F.normalize(model.encode_text(tokenizer(CLASSES)), dim=-1)
    for k in range(0, n_single, bs):
        cls_l, mean_l, cls_p = visual_paths(model.visual, to_tensor(imgs[k : k + bs]))
        preds["c"].append((cls_l @ tcls.T).argmax(1))
        preds["a"].append((mean_l @ tcls.T).argmax(1))
        preds["b"].append((cls_p @ tcls.T).argmax(1))
        preds["b_raw_name"].append((mean_l @ traw.T).argmax(1))
    res = {f"single_{k}": float((torch.cat(v) == ys).float().mean()) for k, v in preds.items()}
    # visually prompted ground-truth masks in multi-object val scenes
    per_kind = {k: ([], []) for k in ["circle_blur", "circle", "blur", "gray"]}
    for i in range(n_multi):
        sc = render_scene(np.random.SeedSequence([seed, 1, i]), size)  # = ShapesDataset("val")[i]
        for cls, m in sc["objects"]:
            if m.sum() < 12:
                continue
            for kind, (ims, yy) in per_kind.items():
                ims.append(apply_prompt(sc["image"], m, kind))
                yy.append(cls - 1)
    for kind, (ims, yy) in per_kind.items():
        p, p_all = [], []
        for k in range(0, len(ims), bs):
            _, _, cls_p = visual_paths(model.visual, to_tensor(ims[k : k + bs]))
            p.append((cls_p @ tcls.T).argmax(1))
            p_all.append((cls_p @ tall.T).argmax(1))
        yy = torch.tensor(yy)
        res[f"prompted_{kind}"] = float((torch.cat(p) == yy).float().mean())
        res[f"prompted_{kind}_with_textures"] = float((torch.cat(p_all) == yy).float().mean())
    res["n_prompted_masks"] = len(per_kind["circle"][1])
    return res


def save_weights(model, path: Path) -> str:
    """fp16 state dict -> path; returns its sha256. Serialised through a buffer: torch.save names the
    records inside its zip after the file's stem, so saving to a path would make the bytes (and the
    sha256) depend on the --out name; this way equal weights give equal files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().to(torch.float16) if v.is_floating_point() else v for k, v in model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(sd, buffer)
    path.write_bytes(buffer.getvalue())
    return hashlib.sha256(path.read_bytes()).hexdigest()
