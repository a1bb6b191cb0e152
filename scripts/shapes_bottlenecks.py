"""Where does CaR lose on the shapes world? (the "why" of car/assets/tiny_clip.md)

    python scripts/shapes_bottlenecks.py                     # committed tiny CLIP, 60 val images
    python scripts/shapes_bottlenecks.py --weights other.pt --num-images 60 --out bottlenecks.json

Two measurements, built from the real configs (dataset=shapes backbone=tiny + overrides):

ideal_maps   an upper bound that needs no CLIP: every image gets exactly its true classes
             (scores 1) and, as proposal maps, the share of each 8x8-pixel token cell the object
             covers (what a perfect gradCAM on the tiny ViT's 8x8 token grid could give),
             upsampled bilinearly; then CaR's own background channel, dense CRF and painting.
             Also with pixel-exact maps. If this bound were low, the dataset (objects too small
             for the token grid) would cap CaR; if high, the weights do.
first_step   CaR's first recurrence step as it runs (every class queried): the proposal mask
             (map > η) of each PRESENT class (its area and IoU with the object), what the mask
             classifier does with that prompted mask (score > θ keeps the query; the arg-max of
             its double softmax is the class itself, another present class or an absent one),
             and how many ABSENT queries survive the step; then the whole recurrence: precision
             and recall of the query set CaR ends with against the classes present.
Prints the numbers and writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from car.clip.text import fill
from car.config import compose
from car.data.build import build_dataset
from car.methods.car.build import build_car, build_crf
from car.methods.car.classifier import double_softmax_scores
from car.methods.car.text import origami
from car.postprocess.crf import paint_label_map, semantic_masks
from car.run.build import build_metric, load_backbones
from car.settings import validate

GRID_CELL = 8  # pixels per token of car-tiny-vit (patch 8 on 64-px images)


def token_coverage_map(mask: np.ndarray, cell: int = GRID_CELL) -> np.ndarray:
    """Share of each cell x cell token the mask covers, upsampled bilinearly and min-max scaled.
    mask [H, W] bool (H, W multiples of cell) -> [H, W] float32 in [0, 1]."""
    h, w = mask.shape
    cover = mask.reshape(h // cell, cell, w // cell, cell).mean(axis=(1, 3)).astype(np.float32)  # [h/c, w/c]
    up = cv2.resize(cover, (w, h), interpolation=cv2.INTER_LINEAR)
    return (up - up.min()) / max(float(up.max() - up.min()), 1e-6)


def ideal_maps(cfg, kind: str, use_crf: bool) -> float:
    """mIoU of CaR's post-processing fed the true classes and ideal maps ("token" or "pixel")."""
    settings = validate(cfg)
    crf = build_crf(settings.car.crf) if use_crf else None
    metric = build_metric(settings)
    dataset = build_dataset(settings)
    for i in range(len(dataset)):
        scene = dataset.scene(i)  # rendered once: image, label map and per-object masks
        target = scene["target"]
        full = {}  # class id -> union of its objects' visible masks (the label map without its ignore band)
        for cls, visible in scene["objects"]:
            full[cls] = full.get(cls, np.zeros_like(visible)) | visible
        ids = sorted(full)
        maps = np.stack([full[c].astype(np.float32) if kind == "pixel" else token_coverage_map(full[c]) for c in ids])
        masks = semantic_masks(scene["image"], maps, crf, float(cfg.car.crf.bg_factor))  # [K, H, W]
        pred = paint_label_map(masks, np.ones(len(ids)), ids, target.shape)
        metric.update(torch.from_numpy(pred), torch.from_numpy(target))
    return round(metric.compute()["miou"], 2)


def first_step(cfg) -> dict:
    settings = validate(cfg)
    clip, classifier_clip = load_backbones(settings)
    car = build_car(settings, clip, classifier_clip)
    names = list(cfg.dataset.queries)  # label id i+1 <-> names[i]
    eta, theta = float(cfg.car.eta), float(cfg.car.theta)
    background = car.text([origami(w) for w in car.background_words])  # [B, D]
    templates = car.classifier.templates
    class_texts = car.classifier.text([fill(t, q) for t in templates for q in names])
    class_texts = class_texts.reshape(len(templates), len(names), -1)  # [T, K, D]
    present = {"kept": [], "argmax_self": [], "argmax_other_present": [], "argmax_absent": [], "mask_area": [],
               "mask_iou": []}
    absent_kept = []
    final = {"images": 0, "kept": 0, "correct": 0, "present": 0}  # the query set CaR ends with
    for sample in build_dataset(settings):
        image, target = sample["image"], sample["target"]
        maps = car.proposals(car.proposals.encode(image), car.text(names), background)  # [K, H, W]
        emb = car.classifier.encode_images(car.prompt.batch(image, maps))  # [K, D]
        q = double_softmax_scores(emb, class_texts, car.classifier.clip.logit_scale)  # [K, K]
        here = {int(v) - 1 for v in np.unique(target) if 0 < v < 255}
        live = set(car(image, names).live)
        final["images"] += 1
        final["kept"] += len(live)
        final["correct"] += len(live & here)
        final["present"] += len(here)
        for k in range(len(names)):
            score, best = float(q[k, k]), int(q[k].argmax())
            if k not in here:
                absent_kept.append(score > theta)
                continue
            mask, obj = maps[k] > eta, target == k + 1
            present["kept"].append(score > theta)
            present["argmax_self"].append(best == k)
            present["argmax_other_present"].append(best != k and best in here)
            present["argmax_absent"].append(best not in here)
            present["mask_area"].append(float(mask.mean()))
            present["mask_iou"].append(float((mask & obj).sum() / max((mask | obj).sum(), 1)))
    out = {f"present_{k}": round(float(np.mean(v)), 4) for k, v in present.items()}
    out.update(absent_kept=round(float(np.mean(absent_kept)), 4), present_queries=len(present["kept"]),
               absent_queries=len(absent_kept), prompts=list(cfg.car.prompts),
               final_queries_per_image=round(final["kept"] / final["images"], 3),
               final_precision=round(final["correct"] / max(final["kept"], 1), 4),
               final_recall=round(final["correct"] / max(final["present"], 1), 4))
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", help="a tiny-CLIP .pt (default: the committed car/assets/tiny_clip.pt)")
    p.add_argument("--num-images", type=int, default=60)
    p.add_argument("--skip-first-step", action="store_true", help="only the ideal-map bounds (no CLIP)")
    p.add_argument("--out", type=Path, help="write the numbers here as JSON")
    p.add_argument("overrides", nargs="*", help="more config overrides, e.g. car.prompts=[blur]")
    args = p.parse_args(argv)
    overrides = ["dataset=shapes", "backbone=tiny", f"dataset.loader.num_images={args.num_images}", *args.overrides]
    if args.weights:
        overrides += [f"backbone.proposal.pretrained={args.weights}", f"backbone.classifier.pretrained={args.weights}"]
    cfg = compose(overrides)
    torch.manual_seed(0)
    result = {"images": args.num_images, "overrides": args.overrides,
              "ideal_maps": {f"{kind}_{'crf' if crf else 'no_crf'}": ideal_maps(cfg, kind, crf)
                             for kind in ("token", "pixel") for crf in (True, False)}}
    if not args.skip_first_step:
        result["weights"] = str(cfg.backbone.proposal.pretrained)
        result["first_step"] = first_step(cfg)
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
