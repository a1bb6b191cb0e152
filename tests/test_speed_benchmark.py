"""The speed benchmark's parts that can be checked without the official code: FLOP floors counted
against torch's own FLOP counter, the exclusive stage clock, the cases' resizing, and the cold
start of the single-image path (neither Lightning nor the metrics imported)."""

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from tests.conftest import REPO, require_shared_data

sys.path.insert(0, str(REPO))

from benchmarks.cases import resize_long_side
from benchmarks.evaluation_path import StageClock
from benchmarks.floors import stage_flops


def _dims(clip) -> dict:
    v = clip.visual
    return {"width": v.transformer.width, "layers": len(v.transformer.resblocks),
            "embed": clip.model.text_projection.shape[1],
            "patch": clip.patch_size, "classifier_size": clip.image_size}


def _counted(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def test_floors_count_the_flops_torch_counts(micro_clip):
    """Trunk and classifier floors equal the matmul FLOPs torch counts in our own passes."""
    from car.methods.car.classifier import MaskClassifier
    from car.methods.car.proposals import ProposalGenerator

    image = np.random.default_rng(0).integers(0, 255, (40, 70, 3), dtype=np.uint8)  # 3 x 5 patches of 16 px
    floors = stage_flops(image.shape[:2], [3, 1], _dims(micro_clip))
    gen = ProposalGenerator(micro_clip, lam=0.4)
    assert _counted(lambda: gen.encode(image)) == floors["trunk (blocks 1..L-1)"]
    clf = MaskClassifier(micro_clip, ["a photo of a {}."])
    images = [image] * 3  # 3 + 1 live queries -> 3 prompted images encoded (one live query: score 1, none)
    # torch's counter skips the CPU fused attention kernel: the CLS row's 4·T·C per image is added here
    tokens, width = (micro_clip.image_size // micro_clip.patch_size) ** 2 + 1, micro_clip.visual.transformer.width
    fused_attention = len(images) * 4 * tokens * width
    assert _counted(lambda: clf.encode_images(images)) + fused_attention == floors["classifier images"]


def test_gradcam_floor_counts_the_flops_torch_counts(vitb16_clip):
    """gradCAM's floor (car/clip/last_block.py's passes) against torch's count over two steps (3 live
    queries, then 1): equal up to the O(T·C) terms the floor leaves out (products with [C]-vectors,
    the CAM itself), under 1 % on a ViT-B/16."""
    import torch.nn.functional as F

    from car.methods.car.proposals import ProposalGenerator

    image = np.random.default_rng(0).integers(0, 255, (40, 70, 3), dtype=np.uint8)
    floor = stage_flops(image.shape[:2], [3, 1], _dims(vitb16_clip))["gradCAM (last block + backward)"]
    gen = ProposalGenerator(vitb16_clip, lam=0.4)
    enc = gen.encode(image)
    texts = F.normalize(torch.randn(3 + 2, vitb16_clip.visual.output_dim), dim=-1)  # 3 queries, 2 background

    def two_steps():
        gen.gradcam(enc, texts.expand(3, -1, -1), torch.arange(3))
        gen.gradcam(enc, texts[2:].expand(1, -1, -1), torch.zeros(1, dtype=torch.long))

    counted = _counted(two_steps)
    assert floor <= counted <= 1.01 * floor, (counted, floor)


def test_stage_clock_counts_each_stage_without_its_inner_stages():
    clock = StageClock()
    with clock("outer"):
        time.sleep(0.05)
        with clock("inner"):
            time.sleep(0.1)
    assert 0.09 < clock.totals["inner"] < 0.3
    assert 0.04 < clock.totals["outer"] < 0.09  # the inner 0.1 s is not counted twice


def test_case_resize_is_the_official_long_side_rule():
    image = np.zeros((281, 500, 3), np.uint8)
    assert resize_long_side(image, 224).shape == (126, 224, 3)  # as the official run of golden case c1
    assert resize_long_side(image, 0) is image


def test_single_image_path_imports_no_training_or_peer_code():
    """car-segment's cold start: Lightning and the metrics (torchmetrics) stay unimported."""
    code = ("import sys, car.apps.segment, car.api, car.run.build; "
            "print(sorted(m for m in ('pytorch_lightning', 'torchmetrics') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_text_digest_is_kept_per_model_and_renewed_after_an_in_place_change(micro_clip):
    from car.clip.text import _DIGESTS, weights_digest

    first = weights_digest(micro_clip.model)
    assert _DIGESTS[micro_clip.model][1] == first and weights_digest(micro_clip.model) == first
    param = micro_clip.model.token_embedding.weight
    with torch.no_grad():
        param.add_(1.0)
    try:
        assert weights_digest(micro_clip.model) != first
    finally:
        with torch.no_grad():
            param.sub_(1.0)


def test_text_digest_covers_every_text_tensor_and_nothing_visual(micro_clip):
    """The key of the on-disk text cache: sha256 over name, dtype, shape and the bytes' sha256 of
    every text-tower entry (hashed on threads); a visual weight does not change it."""
    import hashlib

    from car.clip.text import _DIGESTS, weights_digest

    _DIGESTS.pop(micro_clip.model, None)
    h = hashlib.sha256(b"car text tower v2\n")
    for name, t in sorted(micro_clip.model.state_dict().items()):
        if not name.startswith("visual."):
            sha = hashlib.sha256(t.contiguous().view(-1).view(torch.uint8).numpy().tobytes()).hexdigest()
            h.update(f"{name}:{t.dtype}:{tuple(t.shape)}:{sha}\n".encode())
    assert weights_digest(micro_clip.model) == h.hexdigest()
    with torch.no_grad():
        micro_clip.visual.proj.add_(1.0)
    try:
        _DIGESTS.pop(micro_clip.model, None)
        assert weights_digest(micro_clip.model) == h.hexdigest()
    finally:
        with torch.no_grad():
            micro_clip.visual.proj.sub_(1.0)


@pytest.mark.slow
def test_our_side_of_the_benchmark_runs_the_evaluation_path(tmp_path):
    """benchmarks/evaluation_path.py composes, validates and builds CaR as evaluate.py does, on a random
    ViT-B/16 written as an OpenAI-layout state dict, and prints its one JSON line (it once broke silently
    when the builders started taking typed settings)."""
    require_shared_data()
    import open_clip

    torch.manual_seed(0)
    weights = tmp_path / "ViT-B-16-random.pt"
    torch.save(open_clip.create_model("ViT-B-16").state_dict(), weights)
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "evaluation_path.py"), "--case", "small",
                          "--weights", str(weights), "--cache-dir", str(tmp_path / "cache"), "--images", "1",
                          "--threads", "1"], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["case"] == "small" and len(result["images"]) == 1
    assert result["images"][0]["seconds"] > 0 and result["label_ids"]


def test_benchmark_priming_starts_from_an_empty_text_cache(tmp_path):
    """bench_official's priming process reports "first image with the text cache cold": an earlier
    run's embeddings under --work are removed first, everything else there is kept."""
    from benchmarks.bench_official import empty_text_cache

    texts = tmp_path / "cache" / "text_embeddings"
    texts.mkdir(parents=True)
    (texts / "ViT-B-16-0123-cpu-fp32.pt").write_bytes(b"x")
    (tmp_path / "golden_vitb16_seed2.pt").write_bytes(b"w")
    empty_text_cache(tmp_path)
    assert not texts.exists() and (tmp_path / "golden_vitb16_seed2.pt").is_file()
    empty_text_cache(tmp_path)  # nothing there: no error
