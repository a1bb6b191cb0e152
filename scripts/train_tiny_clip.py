#!/usr/bin/env python
"""Train the tiny CLIP ("car-tiny-vit") from scratch on the procedural shapes dataset.

The model is a standard open_clip CLIP (config car/clip/model_configs/car-tiny-vit.json).
Training is supervised by text: every step embeds the label words (10 classes, 8 textures) under
randomly drawn templates through the text tower, and trains the image tower's three forward
paths used by CaR against them (data: scripts/tiny_clip_data.py; model, evaluation and saving:
scripts/tiny_clip_model.py):

  (a) mean of ln_post(patch tokens) after all L blocks @ proj          (gradCAM proposals)
  (b) ln_post(CLS) after blocks 1..L-1 @ proj                           (mask classifier)
  (c) ln_post(CLS) after all L blocks @ proj = open_clip's encode_image (plain zero-shot)

Objective `ce` (default): one-of-K softmax losses on single-object scenes for (a), (b), (c),
texture names on (a), and the class of a visually prompted object of a multi-object scene on
(b). Optional scene losses on multi-object scenes: `--dense-weight` (every final patch token
against the label under it) and `--cam-weight` (CaR's own gradCAM map of a present class against
the class's tokens, differentiated through the gradient that weights it; `training_gradcam` equals
car.methods.car.proposals.ProposalGenerator.gradcam, tested). `--loose-prompt-p` draws that share of
the prompted objects on a loose disc around the object, as loose as CaR's proposal masks (stage 2
of the shipped weights); `--neg-prompt-p` prompts background discs labelled with their texture
(tried, it hurt CaR). Objective `sigmoid` (the first attempt):
multi-label SigLIP-style losses on whole scenes.
Deterministic for a seed: scenes of step t are rendered from SeedSequence([seed, 0, t*B + j]);
`--init` + `--data-offset` continue a run from saved weights on new scenes (a second stage).
The command that produced car/assets/tiny_clip.pt is in car/assets/tiny_clip.md.

    python scripts/train_tiny_clip.py --smoke      # a few steps, for CI
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(Path(__file__).resolve().parent))  # scripts/: the data and model modules beside this file

from tiny_clip_data import LABELS, BatchStream, apply_prompt, batch_maker, make_batch, make_batch_ce  # noqa: E402, F401
from tiny_clip_model import (  # noqa: E402, F401  (re-exported: the tests use them through this script)
    ARCH,
    TRAIN_TEMPLATES,
    build_model,
    evaluate,
    save_weights,
    text_embed,
    visual_paths,
    visual_trunk,
)

from car.clip.surgery import block_forward, project  # noqa: E402
from car.data.shapes import CLASSES, TEXTURES  # noqa: E402

C = len(CLASSES)



# --------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------
def sample_templates(rng: np.random.Generator, n: int) -> list[str]:
    return [TRAIN_TEMPLATES[k] for k in rng.integers(len(TRAIN_TEMPLATES), size=n)]


def compute_loss(model, tokenizer, bias, batch, rng, w_prompt: float = 1.0):
    raw, multi, prompted, ptarget = batch
    nb = raw.shape[0]
    cls_l, mean_l, cls_p = visual_paths(model.visual, torch.cat([raw, prompted]))
    scale = model.logit_scale.exp()
    t1 = text_embed(model, tokenizer, LABELS, sample_templates(rng, len(LABELS)))
    t2 = text_embed(model, tokenizer, LABELS, sample_templates(rng, len(LABELS)))
    t3 = text_embed(model, tokenizer, LABELS, sample_templates(rng, len(LABELS)))

    def sig(f, t):
        logits = scale * f @ t.T + bias
        return F.binary_cross_entropy_with_logits(logits, multi, reduction="sum") / nb

    l_c = sig(cls_l[:nb], t1)
    l_a = sig(mean_l[:nb], t2)
    l_b_raw = sig(cls_p[:nb], t3)
    l_b = F.cross_entropy(scale * cls_p[nb:] @ t1.T, ptarget)
    loss = l_c + l_a + 0.5 * l_b_raw + w_prompt * 2.0 * l_b
    parts = {"c": l_c.item(), "a": l_a.item(), "b_raw": l_b_raw.item(), "b": l_b.item()}
    return loss, parts


def training_gradcam(visual, x, choice, texts, scale):
    """CaR's raw gradCAM (car/methods/car/proposals.py, §3.3) as a differentiable function of the weights.

    x [B, 1+N, W]: tokens after blocks 1..L-1; choice [B]: the text index whose probability is
    explained (-1: none); texts [K, D] unit-norm. Softmax of the patch-mean embedding over the K
    texts; gradient of the chosen probability at ln_1 of the last block; channel weights = that
    gradient averaged over patch tokens, applied to the ln_1 tokens. The dependence of the channel
    weights on the model is kept (create_graph), so a loss on the map trains it fully.
    Returns the raw map before ReLU and min-max [B, N] and the final patch tokens ln_post @ proj [B, N, D].
    """
    last = visual.transformer.resblocks[-1]
    z = last.ln_1(x)  # the activation CaR hooks, [B, 1+N, W]
    y, _ = block_forward(last, x, need_weights=True, z=z)  # explicit softmax: SDPA has no double backward on CPU
    patches = project(visual, y[:, 1:])  # [B, N, D]
    v = F.normalize(patches.mean(dim=1), dim=-1)  # patch-mean embedding [B, D]
    prob = (scale * v @ texts.T).softmax(dim=-1)  # [B, K]
    p = prob[torch.arange(len(choice)), choice.clamp_min(0)] * (choice >= 0)  # the chosen text's, [B]
    (grad,) = torch.autograd.grad(p.sum(), z, create_graph=True)  # scenes are independent: [B, 1+N, W]
    weights = grad[:, 1:].mean(dim=1, keepdim=True)  # channel weights, [B, 1, W]
    return (weights * z[:, 1:]).sum(-1), patches  # [B, N], [B, N, D]


def gradcam_loss(visual, x, labels, texts, scale, rng, temperature: float = 2.0):
    """A loss on CaR's own proposal map, so that the path CaR reads is what is optimised.

    x [B, 1+N, W]: multi-object scenes after blocks 1..L-1; labels [B, N]: per-token class
    0..C-1, C + texture, or -100; texts: class + texture texts [C+T, D]. For one present class per
    scene (drawn with rng), the class's gradCAM should put its mass on the class's tokens:
    -log of the softmax mass of the standardised map inside the object, over all labelled tokens
    (the raw map's scale is arbitrary). Returns (loss, final patch tokens normalised [B, N, D]).
    """
    choice = torch.full((x.shape[0],), -1)
    for b in range(x.shape[0]):
        present = [c for c in torch.unique(labels[b]).tolist() if 0 <= c < C]
        if present:
            choice[b] = present[rng.integers(len(present))]
    cam, patches = training_gradcam(visual, x, choice, texts, scale)
    cam = (cam - cam.mean(1, keepdim=True)) / (cam.std(1, keepdim=True) + 1e-8)
    inside = labels == choice[:, None]  # never true where no class was chosen
    logits = (temperature * cam).masked_fill(labels < 0, float("-inf"))
    log_in = logits.masked_fill(~inside, float("-inf")).logsumexp(1)
    ok = inside.any(1)
    loss = (logits.logsumexp(1) - log_in)[ok].mean() if ok.any() else x.new_zeros(())
    return loss, F.normalize(patches, dim=-1)


def compute_loss_ce(model, tokenizer, bias, batch, rng, w_prompt: float = 1.0, dense_weight: float = 0.0,
                    cam_weight: float = 0.0, prompt_textures: bool = False):
    """Softmax (CLIP-style) losses against text embeddings of the class / texture names under
    random templates: single objects on every CaR path (c, a, b) and textures on the patch-mean
    path (a, the proposal path, where texture names act as background words); prompted objects
    on the classifier path (b). dense_weight > 0 adds a per-token loss on multi-object scenes:
    each final-layer patch token against the label under it (class or texture), which gives the
    patch tokens the locality gradCAM needs (see car/assets/tiny_clip.md). prompt_textures: the
    prompted loss runs over class + texture words (the batch holds background-disc prompts
    labelled C + t, see tiny_clip_data.make_batch_ce)."""
    single, ycls, ytex, prompted, ptarget, multi, tokens = batch
    nb = single.shape[0]
    cls_l, mean_l, cls_p = visual_paths(model.visual, torch.cat([single, prompted]))
    scale = model.logit_scale.exp()
    tc = [text_embed(model, tokenizer, CLASSES, sample_templates(rng, C)) for _ in range(3)]
    tt = text_embed(model, tokenizer, TEXTURES, sample_templates(rng, len(TEXTURES)))
    ce = lambda f, t, y: F.cross_entropy(scale * f @ t.T, y)  # noqa: E731
    l_c, l_a, l_b = ce(cls_l[:nb], tc[0], ycls), ce(mean_l[:nb], tc[1], ycls), ce(cls_p[:nb], tc[2], ycls)
    l_t = ce(mean_l[:nb], tt, ytex)
    l_p = ce(cls_p[nb:], torch.cat([tc[0], tt]) if prompt_textures else tc[0], ptarget)
    loss = l_c + l_a + l_b + 0.5 * l_t + w_prompt * 2.0 * l_p
    parts = {"c": l_c.item(), "a": l_a.item(), "b": l_b.item(), "tex": l_t.item(), "prompt": l_p.item()}
    if dense_weight > 0 or cam_weight > 0:
        t_all = text_embed(model, tokenizer, LABELS, sample_templates(rng, len(LABELS)))  # [C+T, D]
    if cam_weight > 0:  # one trunk pass serves both scene losses
        texts = torch.cat([tc[1], tt]).detach()  # class + texture (background-word) texts, [C+T, D]
        l_g, patches = gradcam_loss(model.visual, visual_trunk(model.visual, multi), tokens, texts,
                                    scale.detach(), rng)
        loss = loss + cam_weight * l_g
        parts["cam"] = l_g.item()
    elif dense_weight > 0:
        patches = visual_paths(model.visual, multi, tokens=True)[3]  # [B, N, D]
    if dense_weight > 0:
        logits = scale * patches @ t_all.T  # [B, N, C+T]
        l_d = F.cross_entropy(logits.flatten(0, 1), tokens.flatten(), ignore_index=-100)
        loss = loss + dense_weight * l_d
        parts["dense"] = l_d.item()
    return loss, parts


def pretrain_text(model, tokenizer, rng, steps=150, lr=3e-3, log=print):
    """Warm up the text tower alone: the same label under two random templates is a positive pair,
    other labels are negatives (CE over labels). Gives the image tower well-separated,
    template-invariant targets from the first step."""
    params = list(model.transformer.parameters()) + [
        model.token_embedding.weight, model.positional_embedding, model.text_projection
    ] + list(model.ln_final.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    target = torch.arange(len(LABELS))
    for _ in range(steps):
        e1 = text_embed(model, tokenizer, LABELS, sample_templates(rng, len(LABELS)))
        e2 = text_embed(model, tokenizer, LABELS, sample_templates(rng, len(LABELS)))
        sim = 10.0 * e1 @ e2.T
        loss = 0.5 * (F.cross_entropy(sim, target) + F.cross_entropy(sim.T, target))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        e1 = text_embed(model, tokenizer, LABELS, sample_templates(rng, len(LABELS)))
        e2 = text_embed(model, tokenizer, LABELS, sample_templates(rng, len(LABELS)))
        off = (e1 @ e2.T)[~torch.eye(len(LABELS), dtype=torch.bool)]
    if log:
        log(f"text warm-up: loss {loss.item():.4f}, same-label cos {(e1 * e2).sum(1).mean():.3f}, "
            f"other-label cos {off.mean():.3f}")


def make_optimizer(model, bias, lr, wd):
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        if p.ndim < 2 or "embedding" in n or "logit_scale" in n or n.endswith(".bias"):
            no_decay.append(p)
        else:
            decay.append(p)
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": wd}, {"params": no_decay + [bias], "weight_decay": 0.0}],
        lr=lr,
        betas=(0.9, 0.98),
        eps=1e-6,
    )


def lr_at(step, steps, lr, warmup):
    if step < warmup:
        return lr * (step + 1) / warmup
    p = (step - warmup) / max(1, steps - warmup)
    return lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * p)))


def train(
    steps=1000,
    batch_size=64,
    seed=0,
    lr=2e-3,
    wd=0.05,
    warmup=None,
    size=64,
    workers=1,
    log_every=50,
    eval_every=0,
    time_limit=None,
    fixed_batch=False,
    text_warmup=150,
    stop_at=None,
    objective="sigmoid",
    init=None,
    data_offset=0,
    dense_weight=0.0,
    cam_weight=0.0,
    neg_prompt_p=0.0,
    loose_prompt_p=0.0,
    log=print,
):
    torch.manual_seed(seed)
    model, tokenizer = build_model()
    model.train()
    if init is not None:  # continue from saved weights (a second stage of a staged run)
        sd = torch.load(init, map_location="cpu", weights_only=True)
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()})
        log(f"initialised from {init}")
    else:
        with torch.no_grad():
            model.logit_scale.fill_(math.log(10.0))
    bias = torch.nn.Parameter(torch.tensor(-2.5))
    opt = make_optimizer(model, bias, lr, wd)
    warmup = warmup if warmup is not None else max(1, min(300, steps // 20))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    if text_warmup:
        t = time.time()
        pretrain_text(model, tokenizer, rng, steps=text_warmup, log=log if log_every else None)
        if log_every:
            log(f"text warm-up {text_warmup} steps took {time.time() - t:.1f}s")
    make = batch_maker(objective, neg_prompt_p, loose_prompt_p)
    if fixed_batch:
        b0 = make(seed, 0, batch_size, size)
        loader = (b0 for _ in range(steps))
    elif workers > 0:
        loader = torch.utils.data.DataLoader(
            BatchStream(seed, steps + data_offset, batch_size, size, make, start=data_offset), batch_size=None,
            shuffle=False, num_workers=workers, prefetch_factor=4, persistent_workers=False,
        )
    else:
        loader = (make(seed, data_offset + s, batch_size, size) for s in range(steps))
    history = []
    t0 = time.time()
    ema = None
    step = 0
    total = steps  # length of the lr schedule; may be shortened once to fit time_limit
    for step, batch in enumerate(loader):
        if step >= total or (stop_at is not None and step >= stop_at):
            break
        if time_limit and step == 30:
            per_step = (time.time() - t0) / 30
            fit = int(30 + 0.97 * (time_limit - (time.time() - t0)) / per_step)
            if fit < total:
                total = fit
                log(f"{per_step:.2f}s/step: lr schedule fixed to {total} steps to fit the time limit "
                    f"(reproduce with --steps {total} --warmup {warmup} and no --time-limit)")
        for g in opt.param_groups:
            g["lr"] = lr_at(step, total, lr, warmup)
        if objective == "ce":
            loss, parts = compute_loss_ce(model, tokenizer, bias, batch, rng, dense_weight=dense_weight,
                                          cam_weight=cam_weight, prompt_textures=neg_prompt_p > 0)
        else:
            loss, parts = compute_loss(model, tokenizer, bias, batch, rng)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(model.parameters()) + [bias], 1.0)
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100.0))
        history.append(loss.item())
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if log_every and (step % log_every == 0 or step == total - 1):
            log(
                f"step {step:5d} loss {loss.item():.4f} ema {ema:.4f} "
                + " ".join(f"{k} {v:.3f}" for k, v in parts.items())
                + f" scale {model.logit_scale.exp().item():.1f} bias {bias.item():.2f} t {time.time() - t0:.0f}s"
            )
        if eval_every and step and step % eval_every == 0:
            log(json.dumps(evaluate(model, tokenizer, size=size, n_single=200, n_multi=100)))
            model.train()
        if time_limit and time.time() - t0 > 1.1 * time_limit:
            log(f"time limit exceeded at step {step}")
            break
    return model, tokenizer, {"history": history, "steps": len(history), "seconds": time.time() - t0, "ema": ema}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--wd", type=float, default=0.05)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1, help="data-rendering worker processes (0 = inline)")
    ap.add_argument("--out", type=str, default=None, help="where to save fp16 weights (.pt)")
    ap.add_argument("--eval-every", type=int, default=0)
    ap.add_argument("--time-limit", type=float, default=None, help="stop after this many seconds")
    ap.add_argument("--text-warmup", type=int, default=150, help="text-tower-only warm-up steps")
    ap.add_argument("--warmup", type=int, default=None,
                    help="linear lr warm-up steps (default: min(300, steps // 20))")
    ap.add_argument("--stop-at", type=int, default=None,
                    help="stop after this many steps without changing the --steps lr schedule")
    ap.add_argument("--objective", choices=["ce", "sigmoid"], default="ce",
                    help="ce: one-of-K losses on single objects + prompted objects (default); "
                         "sigmoid: multi-label scenes (the first attempt)")
    ap.add_argument("--init", type=str, default=None,
                    help="start from these weights (e.g. the previous stage's .pt) instead of random init")
    ap.add_argument("--data-offset", type=int, default=0,
                    help="first step index of the scene stream (a later stage sees new scenes)")
    ap.add_argument("--dense-weight", type=float, default=0.0,
                    help="weight of the per-token loss on multi-object scenes (ce objective; 0 = off)")
    ap.add_argument("--cam-weight", type=float, default=0.0,
                    help="weight of the loss on CaR's own gradCAM map of multi-object scenes (ce objective; 0 = off)")
    ap.add_argument("--neg-prompt-p", type=float, default=0.0,
                    help="share of prompted images that prompt a background disc labelled with its texture "
                         "(ce objective; teaches the classifier to reject absent queries; 0 = off)")
    ap.add_argument("--loose-prompt-p", type=float, default=0.0,
                    help="share of object prompts drawn on a loose disc around the object instead of its "
                         "exact mask, as loose as CaR's proposal masks (ce objective; 0 = off)")
    ap.add_argument("--no-eval", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="5 quick steps (CI)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.smoke:
        args.steps, args.batch_size, args.workers, args.no_eval, args.text_warmup = 5, 8, 0, True, 10
    model, tokenizer, info = train(
        steps=args.steps, batch_size=args.batch_size, seed=args.seed, lr=args.lr, wd=args.wd, size=args.size,
        workers=args.workers, log_every=1 if args.smoke else 50, eval_every=args.eval_every,
        time_limit=args.time_limit, text_warmup=args.text_warmup, stop_at=args.stop_at, objective=args.objective,
        init=args.init, data_offset=args.data_offset, dense_weight=args.dense_weight, warmup=args.warmup,
        cam_weight=args.cam_weight, neg_prompt_p=args.neg_prompt_p,
        loose_prompt_p=args.loose_prompt_p,
    )
    print(f"trained {info['steps']} steps in {info['seconds']:.0f}s, final loss ema {info['ema']:.4f}")
    if not args.no_eval:
        t = time.time()
        res = evaluate(model, tokenizer, size=args.size)
        print("EVAL " + json.dumps(res) + f" ({time.time() - t:.0f}s)")
    if args.out:
        digest = save_weights(model, Path(args.out))
        print(f"saved {args.out} ({os.path.getsize(args.out)} bytes) sha256 {digest}")
    return model, info


if __name__ == "__main__":
    main()
