"""Scale-out: DDP equality, submitit multiruns, sweep summary, paper-table report, wandb offline,
and the on-disk text-embedding cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from car.config import CONFIG_DIR, REPO_ROOT
from tests.conftest import SHARED_DATA, require_shared_data

FAST = ["backbone=micro_random", f"paths.data_root={SHARED_DATA}", "car.crf.enabled=false",
        "trainer.enable_progress_bar=false"]


def run_evaluate(args: list[str], tmp_path: Path, env: dict | None = None, timeout: int = 600):
    """`python evaluate.py ...` in a subprocess, outputs and caches under tmp_path."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "CAR_OUTPUT_ROOT": str(tmp_path / "outputs"),
                "PYTHONPATH": str(REPO_ROOT), **(env or {})}
    proc = subprocess.run([sys.executable, "evaluate.py", *args], cwd=REPO_ROOT, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


# --- DDP -------------------------------------------------------------------------------------

@pytest.mark.slow
def test_ddp_two_processes_equal_single_process(tmp_path):
    require_shared_data()
    common = FAST + ["dataset=voc", "logger=none", "num_overlays=5"]
    run_evaluate(common + [f"hydra.run.dir={tmp_path / 'single'}"], tmp_path)
    run_evaluate(common + ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp",
                           f"hydra.run.dir={tmp_path / 'ddp'}"], tmp_path)
    single = json.loads((tmp_path / "single" / "metrics.json").read_text())
    ddp = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    dataset_size = len((SHARED_DATA / "VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt").read_text().split())
    assert single["num_images"] == ddp["num_images"] == dataset_size == 5
    assert ddp["confusion_matrix"] == single["confusion_matrix"]  # integer sums: bit for bit
    assert ddp["miou"] == single["miou"] and ddp["per_class_iou"] == single["per_class_iou"]
    assert ddp["mean_steps"] == single["mean_steps"]
    assert ddp["config"]["trainer"]["devices"] == 2
    # every image once, in dataset order, overlays gathered from both ranks
    overlays = sorted(p.name for p in (tmp_path / "ddp" / "overlays").glob("*.png"))
    assert overlays == sorted(p.name for p in (tmp_path / "single" / "overlays").glob("*.png")) and len(overlays) == 5


def test_ddp_config_composes():
    from car.config import compose

    cfg = compose(["trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"])
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.devices == 4 and cfg.trainer.num_nodes == 2
    assert cfg.trainer.inference_mode is False


def test_gather_interleaved_restores_dataset_order(monkeypatch):
    """Rank r holds dataset indices r, r+W, ... (UnrepeatedDistributedSampler): re-interleave."""
    import car.run.distributed as d

    parts = [[0, 3, 6], [1, 4], [2, 5]]
    monkeypatch.setattr(d, "is_distributed", lambda: True)
    monkeypatch.setattr(d.dist, "get_world_size", lambda: 3)
    monkeypatch.setattr(d.dist, "all_gather_object", lambda out, obj: out.__setitem__(slice(None), parts))
    assert d.gather_interleaved([]) == list(range(7))


# --- multirun through submitit's local executor, then the sweep summary ----------------------

@pytest.mark.slow
def test_multirun_with_submitit_local_and_sweep_summary(tmp_path):
    require_shared_data()
    sweep_dir = tmp_path / "sweep"
    run_evaluate(["-m", "launcher=local", "experiment=smoke", "dataset.limit=1", *FAST, "car.theta=0.5,0.6",
                  f"hydra.sweep.dir={sweep_dir}"], tmp_path)
    metrics = sorted(sweep_dir.glob("*/metrics.json"))
    assert len(metrics) == 2 and (sweep_dir / ".submitit").is_dir()
    thetas = sorted(json.loads(p.read_text())["config"]["car"]["theta"] for p in metrics)
    assert thetas == [0.5, 0.6]

    proc = subprocess.run([sys.executable, "-m", "car.reporting.sweep", str(sweep_dir)], cwd=REPO_ROOT,
                          capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    md = (sweep_dir / "sweep_summary.md").read_text()
    assert "← paper" in md and (sweep_dir / "sweep_summary.csv").is_file()
    paper_line = next(line for line in md.splitlines() if "← paper" in line)
    assert "| 0.6 |" in paper_line  # VOC's paper θ


def fake_run(root: Path, name: str, dataset: str = "voc", miou: float = 50.0, eta: float = 0.4,
             theta: float = 0.6, lam: float = 0.4, key: str = "voc21", task: str = "semantic",
             extra: dict | None = None, published: dict | None = None) -> Path:
    run = root / name
    run.mkdir(parents=True)
    config = {"dataset": {"name": dataset, "published_key": key, "loader": {}}, "backbone": {"name": "vitb16_vitl14"},
              "car": {"eta": eta, "theta": theta, "lambda": lam, "max_iterations": 10}, "seed": 0,
              "output_dir": str(run), **(extra or {})}
    metrics = {"dataset": dataset, "task": task, "backbone": {"name": "vitb16_vitl14"}, "num_images": 5,
               "miou": miou, "published": published, "config": config}
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


def test_sweep_summary_sorted_with_differing_columns_and_paper_mark(tmp_path):
    from car.reporting.sweep import summarize

    fake_run(tmp_path, "0", miou=40.0, theta=0.5)
    fake_run(tmp_path, "1", miou=60.0, theta=0.6)  # VOC's paper setting
    fake_run(tmp_path, "2", miou=55.0, theta=0.7, extra={"seed": 1})
    text, md, csv_path = summarize(tmp_path)
    lines = [line for line in text.splitlines()[2:]]
    assert [line.split("|")[1].strip() for line in lines] == ["1", "2", "0"]  # by mIoU, best first
    header = text.splitlines()[0]
    assert "seed" in header and "output_dir" not in header and "max_iterations" not in header
    assert "← paper" in lines[0] and "← paper" not in lines[1] + lines[2]
    rows = csv_path.read_text().splitlines()
    assert rows[0].startswith("run,dataset,backbone,images,mIoU,eta,theta,lambda") and len(rows) == 4
    assert md.read_text().count("← paper") == 1


# --- paper-table experiment and the report --------------------------------------------------

def hydra_compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=True)


def test_paper_table_experiment_sweeps_every_paper_row():
    """Every row of the sweep composes, and each one has a published number to be compared with:
    the SAM rows with the paper's CaR + SAM numbers, the referring rows with their split's."""
    from car.config import compose
    from car.reporting.results import published_row

    cfg = hydra_compose(["experiment=paper_table"])
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    rows = cfg.hydra.sweeper.params.paper_row.split(",")
    assert {"voc21", "voc21_sam", "coco_object_sam", "context60_sam", "refcoco_testB",
            "refcocog_google_val"} <= set(rows)
    assert len(rows) == len(set(rows)) == 22
    unpublished = {"coco_stuff", "cityscapes", "ade150", "ade847", "context459"}  # no CaR number exists for these
    expected = {}
    for row in rows:
        run = compose([f"paper_row={row}"])
        assert run.postprocess.name == ("sam" if row.endswith("_sam") else "none")
        published = published_row(run)
        if row in unpublished:
            assert published is None or published.get("miou") is None, row
            continue
        assert published is not None, row
        expected[row] = (run.dataset.name, run.backbone.name, published["miou"])
    assert len(expected) == 17
    assert expected["voc21"] == ("voc", "vitb16_vitl14", 67.6) and expected["voc21_sam"][2] == 70.2
    assert expected["context60_sam"][2] == 31.1 and expected["coco_object_sam"][2] == 37.6
    assert expected["refcoco_testA"] == ("refcoco", "vitb16", 35.36)
    assert expected["refcocog_google_val"][2] == 36.63


def test_sweep_configs_compose():
    grid = hydra_compose(["hparams_search=grid"])
    assert set(grid.hydra.sweeper.params) == {"car.eta", "car.theta", "car.lambda"}
    assert "0.6" in grid.hydra.sweeper.params["car.theta"].split(",")
    optuna = hydra_compose(["hparams_search=optuna"])
    assert optuna.hydra.sweeper._target_.endswith("OptunaSweeper") and optuna.hydra.sweeper.direction == "maximize"
    assert hydra_compose(["launcher=slurm"]).hydra.launcher._target_.endswith("SlurmLauncher")
    assert hydra_compose(["launcher=local"]).hydra.launcher._target_.endswith("LocalLauncher")


def report(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "car.reporting.report", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True,
                          timeout=120)


def test_report_passes_within_tolerance(tmp_path):
    fake_run(tmp_path, "0", dataset="voc", key="voc21", miou=67.2)  # paper 67.6, tolerance 1.0
    fake_run(tmp_path, "1", dataset="refcoco", key="refcoco/testA", task="referring", miou=35.0)  # paper 35.36
    proc = report([str(tmp_path)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "67.60" in proc.stdout and "35.36" in proc.stdout and "FAIL" not in proc.stdout
    assert (tmp_path / "report.md").is_file()


def test_report_fails_beyond_tolerance(tmp_path):
    fake_run(tmp_path, "0", dataset="voc", key="voc21", miou=67.2)
    fake_run(tmp_path, "1", dataset="voc20", key="voc20", miou=88.0)  # paper 91.4: off by 3.4
    proc = report([str(tmp_path)])
    assert proc.returncode == 1
    fail_line = next(line for line in proc.stdout.splitlines() if "FAIL" in line)
    assert "voc20" in fail_line and "-3.40" in fail_line


def test_report_compares_sam_runs_and_peer_runs_with_their_own_rows(tmp_path):
    fake_run(tmp_path, "0", dataset="voc", key="voc21", miou=70.0, extra={"postprocess": {"name": "sam"}})  # 70.2
    fake_run(tmp_path, "1", dataset="voc", key="voc21", miou=59.0, extra={"method": {"name": "sclip"}})  # 59.1
    proc = report([str(tmp_path)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "voc21 + SAM" in proc.stdout and "70.20" in proc.stdout and "59.10" in proc.stdout
    fake_run(tmp_path, "2", dataset="voc20", key="voc20", miou=91.4, extra={"postprocess": {"name": "sam"}})
    proc = report([str(tmp_path)])  # the paper has no VOC-20 + SAM number: missing, not CaR's 91.4
    assert proc.returncode == 1 and "missing" in next(x for x in proc.stdout.splitlines() if "voc20" in x)


def test_report_with_alternative_expected_file(tmp_path):
    runs = tmp_path / "runs"
    fake_run(runs, "0", dataset="shapes", key="shapes", miou=80.0, published={"miou": 10.0})
    expected = tmp_path / "shapes_expected.yaml"
    expected.write_text(yaml.safe_dump({"shapes": {"miou": 79.0, "tolerance": 2.0}}))  # car.semantic format
    assert report([str(runs), "--published", str(expected)]).returncode == 0
    expected.write_text(yaml.safe_dump({"shapes": {"miou": 79.0, "tolerance": 0.5}}))
    assert report([str(runs), "--published", str(expected)]).returncode == 1
    expected.write_text(yaml.safe_dump({"car": {"semantic": {"other": 1.0}}}))  # no row: missing fails
    proc = report([str(runs), "--published", str(expected)])
    assert proc.returncode == 1 and "missing" in proc.stdout
    assert report([str(runs), "--published", str(expected), "--allow-missing"]).returncode == 0
    assert report([str(tmp_path / "empty")]).returncode == 2


# --- wandb offline ----------------------------------------------------------------------------

@pytest.mark.slow
def test_wandb_offline_run(tmp_path):
    require_shared_data()
    wandb_dir = tmp_path / "wandb_dir"
    wandb_dir.mkdir()
    run_evaluate(FAST + ["dataset=voc", "dataset.limit=1", "logger=wandb", "num_overlays=1",
                         f"hydra.run.dir={tmp_path / 'run'}"], tmp_path,
                 env={"WANDB_MODE": "offline", "WANDB_DIR": str(wandb_dir), "WANDB_SILENT": "true"})
    assert (tmp_path / "run" / "metrics.json").is_file()
    runs = list((wandb_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))
    media = runs[0] / "files" / "media"
    assert list((media / "images").rglob("*.png")) and list((media / "table").rglob("*.json"))


# --- text-embedding cache ---------------------------------------------------------------------

def micro(seed: int):
    from car.clip.load import load_clip

    torch.manual_seed(seed)
    return load_clip({"arch": "car-micro-vit", "pretrained": None})


def test_text_cache_equals_fresh_and_is_keyed_by_model(tmp_path, monkeypatch):
    from car.clip.text import TextEncoder

    texts = ["a photo of a cat.", "a clean origami dog.", "sky"]
    clip_a, clip_b = micro(0), micro(1)
    fresh = TextEncoder(clip_a)(texts)

    cold = TextEncoder(clip_a, cache_dir=tmp_path)
    assert torch.equal(cold(texts), fresh) and cold.disk_hits == 0
    cold.flush()
    files = list((tmp_path / "text_embeddings").glob("*.pt"))
    assert len(files) == 1 and files[0].name.startswith("car-micro-vit-") and files[0].name.endswith("-cpu-fp32.pt")
    stored = torch.load(files[0], weights_only=True)
    assert set(stored["texts"]) == set(texts) and stored["embeddings"].shape == (len(texts), 64)

    warm = TextEncoder(clip_a, cache_dir=tmp_path)
    monkeypatch.setattr(clip_a.model, "encode_text", lambda *a, **k: pytest.fail("cache miss"))
    assert torch.equal(warm(texts), fresh) and warm.disk_hits == len(texts)
    monkeypatch.undo()

    # same architecture, other weights: its own file, its own embeddings
    other = TextEncoder(clip_b, cache_dir=tmp_path)
    emb_b = other(texts)
    assert other.disk_hits == 0 and not torch.allclose(emb_b, fresh)
    other.flush()
    assert len(list((tmp_path / "text_embeddings").glob("*.pt"))) == 2
    assert torch.equal(TextEncoder(clip_b, cache_dir=tmp_path)(texts), emb_b)

    # a new text next to cached ones: merged into the same file
    more = TextEncoder(clip_a, cache_dir=tmp_path)
    more(texts + ["a new query."])
    more.flush()
    assert len(torch.load(files[0], weights_only=True)["texts"]) == 4


def test_text_cache_keeps_what_a_dropped_encoder_embedded(tmp_path):
    """The first new entries are written at once, later ones every SAVE_EVERY_S seconds or at exit: an
    encoder garbage-collected before the end of the process (a function's local segmenter) writes
    them when it goes (they were lost, and the next process re-embedded them)."""
    import gc

    from car.clip.text import TextEncoder

    clip = micro(0)
    encoder = TextEncoder(clip, cache_dir=tmp_path)
    encoder(["cat"])  # written at once (first save)
    encoder(["dog", "a clean origami sky."])  # within SAVE_EVERY_S: pending
    del encoder
    gc.collect()
    warm = TextEncoder(clip, cache_dir=tmp_path)
    warm(["cat", "dog", "a clean origami sky."])
    assert warm.disk_hits == 3


def test_text_embedding_does_not_depend_on_the_texts_embedded_with_it():
    """Embedded alone, among others at another position, or after a warm cache supplied some of its
    companions: bit-identical (fixed-size padded batches), so a warm cache cannot move a pixel."""
    from car.clip.text import TextEncoder

    clip = micro(0)
    others = [f"a photo of a thing number {i}." for i in range(11)]
    alone = TextEncoder(clip)(["cat"])[0]
    mixed = TextEncoder(clip)(others[:5] + ["cat"] + others[5:])[5]
    assert torch.equal(alone, mixed)


def test_text_cache_ignores_damaged_file(tmp_path):
    from car.clip.text import TextEncoder

    clip = micro(0)
    encoder = TextEncoder(clip, cache_dir=tmp_path)
    path = encoder.cache_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    assert torch.equal(encoder(["cat"]), TextEncoder(clip)(["cat"]))
    encoder.flush()
    assert torch.load(path, weights_only=True)["texts"] == ["cat"]


def test_text_cache_dir_in_config():
    from car.config import compose

    cfg = compose([])
    assert cfg.paths.cache_dir == f"{cfg.paths.output_root}/cache"


def test_store_and_sam_share_one_hashing_module_without_an_import_cycle():
    """car.run.store and car.postprocess.sam.generator both hash weights files with car.hashing; each imports
    cleanly on its own in a fresh interpreter (no cycle between them)."""
    import subprocess
    import sys

    for module in ("car.postprocess.sam.generator", "car.run.store", "car.hashing"):
        done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    import car.hashing
    import car.postprocess.sam.generator
    import car.run.store

    assert car.run.store.file_sha256 is car.hashing.file_sha256 is car.postprocess.sam.generator.file_sha256
