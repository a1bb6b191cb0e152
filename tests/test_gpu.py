"""CaR on CUDA (marker `gpu`: skipped without CUDA; `benchmarks/device_check.sh` runs them on a GPU machine).

* a golden case of the official implementation, run on CUDA, gives the decisions of the official
  CPU run (which our CPU run reproduces, tests/test_golden.py), floats within the same tolerances;
* every stage keeps its tensors on the device, and what comes back to the host per image does not
  grow with the number of queries (no per-query transfers);
* the fp16-weights mode (quirk Q32) runs on CUDA with float16 weights, close to fp32;
* a whole evaluation (Lightning on the GPU, CRF worker processes, DataLoader workers) gives the
  CPU run's confusion matrix up to float noise.

TF32 is switched off in these tests: the parity checks compare float32 arithmetic.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from car.clip.load import load_clip
from car.clip.text import TextEncoder
from car.methods.car.classifier import MaskClassifier
from car.methods.car.prompts import VisualPrompt
from car.methods.car.proposals import ProposalGenerator
from car.methods.car.recurrence import CaR
from tests.conftest import SHARED_DATA, require_shared_data

pytestmark = pytest.mark.gpu
QUERIES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "dog", "horse"]


@pytest.fixture(autouse=True)
def no_tf32():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def micro(device: str, seed: int = 0):
    torch.manual_seed(seed)
    return load_clip({"arch": "car-micro-vit", "pretrained": None}, device)


def build(clip, precision: str = "fp32", **kw) -> CaR:
    return CaR(ProposalGenerator(clip, 0.4), MaskClassifier(clip, ["a photo of a {}.", "a clean origami {}."]),
               VisualPrompt(["circle", "blur"], 0.4), TextEncoder(clip), theta=0.1, background_words=["sky", "road"],
               precision=precision, **kw)


def test_golden_case_on_cuda_gives_the_official_decisions(tmp_path_factory):
    from car.fidelity import GoldenCase, check_case, golden_dir, golden_weights

    root = golden_dir()
    if root is None:
        pytest.skip("golden data not found (../shared/golden)")
    weights = golden_weights(root, tmp_path_factory.mktemp("golden"))
    checks = check_case(GoldenCase(root / "c1_032_default.npz"), weights, modes=("config", "E2E"), device="cuda")
    decisions = [c for c in checks if c.stage in ("steps", "query texts", "kept queries")]
    assert decisions and all(c.ok for c in decisions), [c.describe() for c in decisions if not c.ok]
    failed = [c.describe() for c in checks if not c.ok]
    assert not failed, "\n".join(failed)


def test_stages_keep_their_tensors_on_the_device(voc_image):
    car = build(micro("cuda"))
    image = voc_image[::2, ::2].copy()
    enc = car.proposals.encode(image)
    assert enc.x.is_cuda and all(a.is_cuda for a in enc.trunk_attn)
    texts = car.text(QUERIES[:3])
    assert texts.is_cuda
    cams, attn = car.proposals.cams(enc, texts, car.text(["sky"]), torch.arange(3, device="cuda"), compete=True)
    assert cams.is_cuda and attn.is_cuda
    assert car.classifier.encode_images([image, image]).is_cuda
    assert car.classifier.text_table(car.classifier.texts(QUERIES[:3])).is_cuda
    result = car(image, QUERIES[:3])
    assert isinstance(result.maps, np.ndarray) and result.maps.shape[1:] == image.shape[:2]


def _host_copies(car: CaR, image, queries) -> tuple[int, int]:
    """(device-to-host, host-to-device) copies during one CaR call (text embeddings already cached)."""
    from torch.profiler import ProfilerActivity, profile

    car(image, queries)  # warm: text cache, kernels
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        car(image, queries)
        torch.cuda.synchronize()
    names = [e.name for e in prof.events()]
    return sum("DtoH" in n for n in names), sum("HtoD" in n for n in names)


def test_no_per_query_transfers(voc_image):
    """One step (max_iterations=1), all queries in one gradCAM chunk: the copies between host and
    device (CAMs for OpenCV's box masks, maps for the prompts, prompted images, scores) are per step,
    not per query. A few extra may come from the Q7 retry of empty CAMs (batched too)."""
    car = build(micro("cuda"), max_iterations=1)
    image = voc_image[::2, ::2].copy()
    few_d2h, few_h2d = _host_copies(car, image, QUERIES[:2])
    many_d2h, many_h2d = _host_copies(car, image, QUERIES[:12])
    assert few_d2h > 0 and few_h2d > 0  # the profiler saw the copies at all
    assert many_d2h - few_d2h < 10 and many_h2d - few_h2d < 10, (few_d2h, many_d2h, few_h2d, many_h2d)


def test_fp16_weights_on_cuda_is_half_and_close_to_fp32(voc_image):
    image = voc_image[::2, ::2].copy()
    full = build(micro("cuda"))(image, QUERIES[:6])
    clip = micro("cuda")
    half = build(clip, "fp16_weights")(image, QUERIES[:6])
    assert clip.dtype == torch.float16 and clip.model.logit_scale.dtype == torch.float32
    assert half.history == full.history
    for a, b in zip(full.trace, half.trace):
        np.testing.assert_allclose(b.scores, a.scores, atol=1e-3)
    assert np.abs(half.maps - full.maps).mean() < 5e-3


def test_autocast_on_cuda_runs(voc_image):
    image = voc_image[::2, ::2].copy()
    for precision in ("fp16", "bf16"):
        result = build(micro("cuda"), precision)(image, QUERIES[:4])
        assert result.maps.dtype == np.float32 and np.isfinite(result.scores).all()


def test_evaluation_on_the_gpu_matches_the_cpu(tmp_path):
    """evaluate.py's path: Lightning moves the CLIPs to the GPU, DataLoader and CRF workers overlap."""
    from car.config import compose
    from car.run.evaluation import evaluate

    require_shared_data()
    base = ["backbone=micro_random", f"paths.data_root={SHARED_DATA}", "dataset=voc", "dataset.limit=3",
            "logger=none", "num_overlays=0", "trainer.enable_progress_bar=false", "save_predictions=false"]
    cpu = evaluate(compose(base, output_dir=tmp_path / "cpu"))
    gpu = evaluate(compose(base + ["trainer=gpu", "crf_workers=2", "num_workers=2"], output_dir=tmp_path / "gpu"))
    a, b = np.array(cpu["confusion_matrix"]), np.array(gpu["confusion_matrix"])
    assert a.sum() == b.sum() > 0
    assert np.abs(a - b).sum() / 2 <= 0.01 * a.sum()  # at most 1 % of the pixels moved (random-weight float noise)
    half = evaluate(compose(base + ["trainer=gpu", "car.precision=fp16_weights"], output_dir=tmp_path / "half"))
    assert np.array(half["confusion_matrix"]).sum() == a.sum()
