"""Teacher-forced checks: every CaR stage fed the official run's own inputs for that stage.

Errors then cannot propagate from one stage to the next, so each stage gets a tight tolerance
(`TOLERANCES`, from the golden README's measurements). The stages run through the same objects
`build_segmenter` made from our config (`car.proposals`, `car.classifier`, `car.prompt`, ...).
"""

from __future__ import annotations

import numpy as np
import torch

from car.fidelity.checks import Check, agreement, box_masks, max_abs, max_rel
from car.fidelity.golden import GoldenCase, Run
from car.methods.car.classifier import double_softmax_scores, template_probs
from car.methods.car.proposals import ImageEncoding, affinity, box_mask, minmax_maps, preprocess, propagate, upsample
from car.methods.car.recurrence import prune
from car.methods.car.segmenter import merge_expression_masks
from car.methods.car.text import origami
from car.postprocess.crf import binary_mask, crf_image, crf_probabilities, paint_label_map, semantic_masks

# stage -> (kind, limit); "proposals" is 1e-2 for x1 (a flat map amplifies float noise ~1e4, README §9)
TOLERANCES = {
    "preprocessing": ("abs", 1e-6), "trunk tokens": ("rel", 1e-5), "trunk attention": ("rel", 1e-5),
    "text features": ("abs", 1e-5), "block-12 attention": ("rel", 1e-5), "CAM probabilities": ("rel", 1e-5),
    "Grad-CAM": ("abs", 2e-5), "box masks": ("equal", None), "refined CAM": ("rel", 1e-5),
    "mask proposals": ("abs", 5e-3), "prompted images": ("agree", 100.0), "classifier texts": ("equal", None),
    "template probs": ("abs", 1e-5), "text scores": ("abs", 1e-5), "mask scores": ("abs", 1e-5),
    "kept queries": ("equal", None), "stop decision": ("equal", None), "query texts": ("equal", None),
    "CRF image": ("agree", 100.0), "CRF input": ("abs", 1e-6), "CRF labels": ("agree", 100.0),
    "CRF masks": ("agree", 100.0), "no-CRF masks": ("agree", 100.0), "label map": ("agree", 100.0),
    "no-CRF label map": ("agree", 100.0), "merged mask": ("agree", 100.0), "IoU metric": ("equal", None),
}


def proposal_limit(case: GoldenCase) -> float:
    return 1e-2 if case.kind == "context" else 5e-3


class Recorder:
    """Collects checks of one case/run/mode, measuring each with its stage's rule."""

    def __init__(self, case: GoldenCase, run: Run, mode: str, tolerances: dict):
        self.case, self.run, self.mode, self.tol = case, run, mode, tolerances
        self.checks: list[Check] = []

    def add(self, stage: str, ours, official, step: int | None = None, channels: bool = False, detail: str = ""):
        kind, limit = self.tol[stage]
        if kind == "equal":
            value = bool(ours == official)
            detail = detail or ("" if value else f"ours {ours!r} vs official {official!r}")
        elif kind == "agree":
            value = agreement(ours, official, channels)
        else:
            value = max_abs(ours, official) if kind == "abs" else max_rel(ours, official)
        self.checks.append(Check(self.case.name, self.run.name, self.mode, stage, step, kind, value, limit, detail))


def _t(array) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array))


def teacher_forced(case: GoldenCase, run: Run, car, crf, bg_factor: float, prompt, queries: list[str],
                   label_ids: list[int]) -> list[Check]:
    """All teacher-forced checks of one run. `car` is our CaR (its stages are what is checked),
    `prompt` the run's VisualPrompt, `queries` / `label_ids` our label space for the run."""
    tol = {**TOLERANCES, "mask proposals": ("abs", proposal_limit(case))}
    rec = Recorder(case, run, "TF", tol)
    g, p = case, run.prefix
    gen, clf = car.proposals, car.classifier
    image = g["image"]
    size = image.shape[:2]

    rec.add("preprocessing", preprocess(image, gen.clip)[0], g[f"{p}clipcam_input"])
    trunk = gen.encode_input(_t(g[f"{p}clipcam_input"])[None], size)
    n_trunk = len(trunk.trunk_attn)
    official_attn = g[f"{p}clipcam_vis_attn"][-n_trunk:, 1:, 1:]  # affinity blocks, CLS dropped
    rec.add("trunk tokens", trunk.x[0], g[f"{p}clipcam_vis_tokens"])
    rec.add("trunk attention", torch.stack(trunk.trunk_attn), official_attn)
    enc = ImageEncoding(x=_t(g[f"{p}clipcam_vis_tokens"])[None], trunk_attn=[_t(a) for a in official_attn],
                        grid=trunk.grid, size=size)
    background = _t(case.background_features(run))
    rec.add("text features", car.text([origami(w) for w in case.background_words(run)]), background,
            detail="background words")

    live, n_last = list(range(len(queries))), 0
    for k in range(1, case.num_steps(run) + 1):
        s = f"{p}step{k}_"
        texts = [queries[i] if k == 1 else origami(queries[i]) for i in live]
        rec.add("query texts", texts, g.strings(f"{s}cam_text"), step=k)
        rec.add("text features", car.text(texts), g[f"{s}fg_text_features"], step=k)
        fg = _t(g[f"{s}fg_text_features"])
        n = fg.shape[0]
        with torch.no_grad():
            v, attn = gen.image_feature(enc)
        rec.add("block-12 attention", attn[0], g[f"{s}attn_last"], step=k)
        if run.referring:  # row i: [query i; background words]
            probs = gen.cam_probs(v, torch.cat([fg[:, None], background.expand(n, -1, -1)], dim=1))
        else:  # one softmax over [all queries; background words]
            probs = gen.cam_probs(v, torch.cat([fg, background])[None]).expand(n, -1)
        official_probs = g[f"{s}cam_probs"]  # c1-c4 store the single shared row
        official_probs = np.broadcast_to(official_probs, (n, official_probs.shape[-1]))
        rec.add("CAM probabilities", probs.detach(), official_probs, step=k)
        cams, _ = gen.cams(enc, fg, background, torch.arange(n), compete=not run.referring)
        rec.add("Grad-CAM", cams, g[f"{s}gradcam_lowres"], step=k)

        official_cam = g[f"{s}gradcam_lowres"]
        boxes = box_masks(g[f"{s}boxes"], n, trunk.grid)
        ours_boxes = np.stack([box_mask(c, gen.lam, gen.box_clamp) for c in official_cam])
        rec.add("box masks", ours_boxes.tolist(), boxes.tolist(), step=k, detail="")
        s_aff = affinity(list(enc.trunk_attn) + [_t(g[f"{s}attn_last"][1:, 1:])])
        refined = propagate(_t(official_cam), boxes, s_aff)
        rec.add("refined CAM", refined, g[f"{s}cam_refined_lowres"], step=k)
        rec.add("mask proposals", upsample(minmax_maps(refined), size), g[f"{s}mask_proposals"], step=k)

        images = [prompt(image, m) for m in g[f"{s}mask_proposals"]]
        rec.add("prompted images", np.stack(images), g[f"{s}prompted_images"], step=k, channels=True)
        table = car.classifier_table(queries, live, k)
        official_table = np.asarray(g[f"{s}semantic_prompt_text"]).reshape(-1, n).tolist()
        rec.add("classifier texts", table, official_table, step=k)
        emb = clf.encode_images(list(g[f"{s}prompted_images"]))  # [K, D]
        text_emb = clf.text_table(official_table)  # [T, K, D]
        rec.add("template probs", template_probs(emb, text_emb, clf.clip.logit_scale), g[f"{s}template_probs"], step=k)
        q = double_softmax_scores(emb, text_emb, clf.clip.logit_scale)  # [K, K]
        rec.add("text scores", q, g[f"{s}text_scores"], step=k)
        rec.add("mask scores", torch.diagonal(q), g[f"{s}mask_scores"], step=k)

        scores = _t(g[f"{s}mask_scores"])
        keep = prune(scores, car.theta)
        official_kept = np.flatnonzero(g[f"{s}all_scores"]).tolist()
        rec.add("kept queries", keep, official_kept, step=k)
        rec.add("query texts", [origami(queries[live[j]]) for j in keep], g.strings(f"{s}filtered_texts"), step=k,
                detail="filtered texts")
        rec.add("stop decision", len(keep) == n_last, k == case.num_steps(run), step=k)
        live, n_last = [live[j] for j in keep], len(keep)

    _post(rec, case, run, crf, bg_factor, label_ids)
    return rec.checks


def _post(rec: Recorder, case: GoldenCase, run: Run, crf, bg_factor: float, label_ids: list[int]) -> None:
    """CRF, painting / merge, from the official final proposals and final masks."""
    g, p, image = case, run.prefix, case["image"]
    cams = g[f"{p}postprocess_cams"]
    rec.add("CRF image", crf_image(image, crf.image_mode), g["crf_image"], channels=True)
    if run.referring:  # one two-class CRF per surviving expression
        for k, m in enumerate(cams):
            official = g[f"{p}crf_prob"][k]
            rec.add("CRF input", np.stack([(1.0 - m) ** bg_factor, m]), official)
            rec.add("CRF labels", crf(image, official), g[f"{p}crf_q"][k].argmax(0))
        for name, engine, key in (("CRF masks", crf, "refined_masks"), ("no-CRF masks", None, "refined_masks_nocrf")):
            masks = [binary_mask(image, m, engine, bg_factor) for m in cams]
            masks = [m for m in masks if m.any()]  # Q19 (official profile)
            rec.add(name, np.stack(masks) if masks else np.zeros((0, *image.shape[:2]), bool), g[f"{p}{key}"] > 0.5)
        finals = g[f"{p}final_masks"] > 0.5
        merged = merge_expression_masks(list(finals), g[f"{p}final_scores"], 0.5, 0.05, image.shape[:2])
        rec.add("merged mask", merged, g["merged_mask"] > 0.5)
        _iou_check(rec, g)
        return
    official = g[f"{p}crf_prob"].reshape(-1, *image.shape[:2])
    rec.add("CRF input", crf_probabilities(cams, bg_factor), official)
    rec.add("CRF labels", crf(image, official), g[f"{p}crf_q"].reshape(official.shape).argmax(0))
    for name, engine, key in (("CRF masks", crf, "refined_masks"), ("no-CRF masks", None, "refined_masks_nocrf")):
        ours = semantic_masks(image, cams, engine, bg_factor)  # [K, H, W]
        theirs = np.zeros_like(ours)
        theirs[: len(g[f"{p}{key}"])] = g[f"{p}{key}"] > 0.5  # Q19: trailing empty labels are dropped
        rec.add(name, ours, theirs)
    if case.kind == "context":
        key = {"thing": "label_map_things_only", "stuff": "label_map_stuff_only"}[run.name]
        ours = paint_label_map(g[f"{p}final_masks"] > 0.5, g[f"{p}final_scores"], label_ids, image.shape[:2])
        rec.add("label map", ours, g[key], detail="this pass alone")
        if run.name == "stuff":  # both passes: stuff painted first, things on top
            both = paint_label_map(g["thing_final_masks"] > 0.5, g["thing_final_scores"], case.label_ids(case.runs[0]),
                                   image.shape[:2], base=ours)
            rec.add("label map", both, g["label_map"], detail="both passes")
        return
    for name, key in (("label map", ""), ("no-CRF label map", "_nocrf")):
        ours = paint_label_map(g[f"final_masks{key}"] > 0.5, g["final_scores"], label_ids, image.shape[:2])
        rec.add(name, ours, g[f"label_map{key}"])


def _iou_check(rec: Recorder, g: GoldenCase) -> None:
    """Our referring metric on the official merged mask and target counts the official
    intersection and union (the official IoU is their ratio)."""
    from car.metrics import ReferringIoU

    metric = ReferringIoU()
    metric.update(torch.from_numpy(g["merged_mask"] > 0.5), torch.from_numpy(g["target"].astype(np.int64)))
    ours = [float(metric.inter_sum), float(metric.union_sum)]
    rec.add("IoU metric", ours, [float(g["intersection"]), float(g["union"])])
