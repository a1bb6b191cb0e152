"""Does a CLIP localise the classes of the shapes world, and where? (the diagnostic of car/assets/tiny_clip.md)

    python scripts/localisation_probe.py                                  # the committed tiny CLIP
    python scripts/localisation_probe.py --weights other.pt --num-images 60 --out probe.json

For every object of the first N shapes val images, given its TRUE class (no recurrence, no pruning):
  gradcam_peak_inside   the raw gradCAM of CaR's ProposalGenerator (§3.3, softmax over all 10 classes
                        + the texture words, as in CaR's first step) peaks inside the object
  refined_peak_inside   same for the proposal after the attention-affinity refinement (§3.4)
  gradcam_iou / refined_iou   IoU of (map > 0.5) with the object
  chance                the mean share of the image an object covers: the peak-inside rate of a
                        map whose peak falls anywhere at random
  token_peak_inside[L]  the patch whose token after L blocks, read through ln_post @ proj, is most
                        similar to the class text lies inside the object (L = depth: the final
                        tokens MaskCLIP reads; L = depth-1: the activation gradCAM weights)
Built from the real configs (dataset=shapes backbone=tiny + overrides), so CaR's quirks apply.
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

from car.clip.surgery import embed_tokens, project, run_blocks
from car.config import compose
from car.data.build import build_dataset
from car.methods.car.build import build_car
from car.methods.car.proposals import preprocess
from car.methods.car.text import origami
from car.run.build import load_backbones
from car.settings import validate


def peak_inside(score: np.ndarray, mask: np.ndarray) -> bool:
    """Whether the arg-max of `score` (any size, resized bilinearly to the mask's) falls in `mask`."""
    up = cv2.resize(score.astype(np.float32), mask.shape[::-1], interpolation=cv2.INTER_LINEAR)
    return bool(mask[np.unravel_index(up.argmax(), up.shape)])


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def probe(overrides: list[str], num_images: int) -> dict:
    cfg = compose(["dataset=shapes", "backbone=tiny", f"dataset.loader.num_images={num_images}", *overrides])
    settings = validate(cfg)
    clip, _ = load_backbones(settings)
    car = build_car(settings, clip, clip)
    gen, text = car.proposals, car.text
    names = list(cfg.dataset.queries)  # label id i+1 <-> names[i]
    queries = text(names)  # [K, D], CaR's first-step texts
    background = text([origami(w) for w in car.background_words])  # [B, D]
    texts = torch.cat([queries, background])[None]  # [1, K+B, D]: CaR's first-step gradCAM softmax
    rows = {"gradcam_peak_inside": [], "refined_peak_inside": [], "gradcam_iou": [], "refined_iou": [], "chance": []}
    depth = gen.depth
    tokens = {d: [] for d in (depth - 1, depth)}
    for sample in build_dataset(settings):
        image, target = sample["image"], sample["target"]
        enc = gen.encode(image)
        with torch.no_grad():
            x, h, w = embed_tokens(clip.visual, preprocess(image, clip))
            sims = {}
            for d in tokens:
                y, _ = run_blocks(clip.visual, x, range(d))
                f = torch.nn.functional.normalize(project(clip.visual, y[:, 1:])[0], dim=-1)  # [N, D]
                sims[d] = (f @ queries.T).T.reshape(len(names), h, w).numpy()  # [K, h, w]
        for label in [v for v in np.unique(target) if 0 < v < 255]:
            k, obj = int(label) - 1, target == label
            cam = gen.gradcam(enc, texts, torch.tensor([k]))[0][0].numpy()  # [h, w]
            refined = gen(enc, queries[k:k + 1], background, compete=False)[0]  # [H, W]
            up = cv2.resize(cam, obj.shape[::-1], interpolation=cv2.INTER_LINEAR)
            rows["gradcam_peak_inside"].append(peak_inside(cam, obj))
            rows["refined_peak_inside"].append(peak_inside(refined, obj))
            rows["gradcam_iou"].append(iou(up > 0.5, obj))
            rows["refined_iou"].append(iou(refined > 0.5, obj))
            rows["chance"].append(float(obj.mean()))
            for d, hits in tokens.items():
                hits.append(peak_inside(sims[d][k], obj))
    out = {k: round(float(np.mean(v)), 4) for k, v in rows.items()}
    out["token_peak_inside"] = {str(d): round(float(np.mean(v)), 4) for d, v in tokens.items()}
    out.update(objects=len(rows["gradcam_iou"]), images=num_images, weights=str(cfg.backbone.proposal.pretrained),
               overrides=overrides)
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", help="a tiny-CLIP .pt (default: the committed car/assets/tiny_clip.pt)")
    p.add_argument("--num-images", type=int, default=60)
    p.add_argument("--out", type=Path, help="write the numbers here as JSON")
    p.add_argument("overrides", nargs="*", help="more config overrides, e.g. car.lambda=0.5")
    args = p.parse_args(argv)
    overrides = list(args.overrides)
    if args.weights:
        overrides += [f"backbone.proposal.pretrained={args.weights}", f"backbone.classifier.pretrained={args.weights}"]
    torch.manual_seed(0)
    result = probe(overrides, args.num_images)
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
