"""Can a run's mIoU be set against the paper's number? Only when it ran the paper's setting.

`comparability(cfg, published, skipped)` says no, with every reason, when the run used:

* weights that are not the paper's: random (`pretrained: null`) or our own demo architectures
  (the tiny / micro CLIPs, `car-*`);
* a subset of the images (`dataset.limit`, or samples skipped under `on_bad_sample=skip`);
* another backbone than the paper's for that dataset (the `backbone` of its published row, else
  the dataset config's default: conf/dataset/<name>.yaml);
* other CaR settings than the dataset config's (thresholds η/θ/λ, prompts, quirks, CRF, ...;
  only memory and speed settings may differ), or another metric protocol than the row's
  (`average`, `bg_protocol`, the referring unit and weighting).

The paper's setting is the dataset's config composed without the run's overrides. The verdict
and its reason are stored in metrics.json (`comparison`) and printed instead of a Δ.
"""

from __future__ import annotations

from functools import lru_cache

import yaml
from omegaconf import DictConfig, OmegaConf

from car.config import flatten
from car.metrics.schema import task_of

DEMO_ARCH_PREFIX = "car-"  # car/clip/model_configs: the tiny and micro CLIPs, not the paper's
FREE_CAR_KEYS = ("chunk_size", "classifier_batch_size", "precision")  # memory and speed only
PROTOCOL_KEYS = ("average", "bg_protocol")  # a published row's protocol fields, matched to dataset.<key>
REFERRING_KEYS = ("weighting", "loader.unit", "loader.gt_overlap")
VIDEO_KEYS = ("video.expressions", "video.protocol", "loader.expression_sets")  # how a video run was scored
TASK_KEYS = {"referring": REFERRING_KEYS, "video": VIDEO_KEYS}  # dataset.<key>s a task's run must share


@lru_cache(maxsize=1)
def dataset_files() -> dict[str, str]:
    """dataset.name -> config file stem (conf/dataset/refcoco_plus.yaml is named refcoco+)."""
    from car.config import CONFIG_DIR

    out = {}
    for path in sorted((CONFIG_DIR / "dataset").glob("*.yaml")):
        name = ((yaml.safe_load(path.read_text()) or {}).get("dataset") or {}).get("name")
        out.setdefault(str(name or path.stem), path.stem)
    return out


def _compose(overrides: list[str]) -> DictConfig:
    """Compose conf/config.yaml with `overrides`, inside a running Hydra app or outside one."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from car.config import CONFIG_DIR

    if GlobalHydra.instance().is_initialized():
        return compose(config_name="config", overrides=overrides)
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def paper_setting(cfg: DictConfig, published: dict | None) -> DictConfig | None:
    """The config the paper's number was measured with: the run's dataset config, its backbone."""
    name = dataset_files().get(str(cfg.dataset.name))
    if name is None:
        return None
    backbone = (published or {}).get("backbone")
    return _compose([f"dataset={name}"] + ([f"backbone={backbone}"] if backbone else []))


def _show(value) -> str:
    """A config value as it is written on the command line (null, true, [circle, blur])."""
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def weight_reasons(cfg: DictConfig) -> list[str]:
    random, demo = [], {}
    for role in ("proposal", "classifier"):
        spec = cfg.backbone[role]
        if spec.get("pretrained") in (None, "", "null", "none"):
            random.append(f"backbone.{role}.pretrained=null")
        elif str(spec.arch).startswith(DEMO_ARCH_PREFIX):
            demo.setdefault(str(spec.arch), []).append(f"backbone.{role}")
    reasons = [f"random weights ({', '.join(random)})"] if random else []
    return reasons + [f"the demo CLIP {arch} ({' and '.join(roles)}), not the paper's" for arch, roles in demo.items()]


def subset_reasons(cfg: DictConfig, skipped: int) -> list[str]:
    reasons = []
    if cfg.dataset.get("limit") is not None:
        reasons.append(f"a subset of the images (dataset.limit={cfg.dataset.limit})")
    if skipped:
        reasons.append(f"{skipped} sample{'s' if skipped != 1 else ''} skipped (on_bad_sample=skip)")
    return reasons


def backbone_reason(cfg: DictConfig, paper: DictConfig, peer: bool) -> str | None:
    roles = ("proposal",) if peer else ("proposal", "classifier")  # the peers run one CLIP
    run = [str(cfg.backbone[r].arch) for r in roles]
    want = [str(paper.backbone[r].arch) for r in roles]
    if run == want:
        return None
    return f"backbone {' + '.join(run)}, the paper's is {' + '.join(want)} ({paper.backbone.name})"


def setting_reasons(cfg: DictConfig, paper: DictConfig, published: dict | None, peer: bool) -> list[str]:
    """car.* (CaR runs) and the metric protocol, where they differ from the paper's."""
    run, want = {}, {}
    if not peer:
        for tree, node in ((run, cfg), (want, paper)):
            tree.update(flatten(OmegaConf.to_container(node.car, resolve=True), "car"))
        for key in FREE_CAR_KEYS:
            run.pop(f"car.{key}", None)
            want.pop(f"car.{key}", None)
    for key in PROTOCOL_KEYS:
        if published and key in published:
            run[f"dataset.{key}"], want[f"dataset.{key}"] = cfg.dataset.get(key), published[key]
    for key in TASK_KEYS.get(task_of(cfg.dataset).name, ()):
        run[f"dataset.{key}"] = OmegaConf.select(cfg, f"dataset.{key}")
        want[f"dataset.{key}"] = OmegaConf.select(paper, f"dataset.{key}")
    differ = [k for k in sorted(set(run) | set(want)) if run.get(k) != want.get(k)]
    shown = [f"{k}={_show(run.get(k))} (paper {_show(want.get(k))})" for k in differ[:3]]
    if len(differ) > 3:
        shown.append(f"{len(differ) - 3} more")
    return [f"settings differ from the paper's: {', '.join(shown)}"] if differ else []


def comparability(cfg: DictConfig, published: dict | None, skipped: int = 0) -> dict:
    """{"comparable": bool, "reason": None or every reason, "; "-joined} for metrics.json."""
    if not published or published.get(task_of(cfg.dataset).headline) is None:
        return {"comparable": False, "reason": f"no published number for {cfg.dataset.name}"}
    peer = (cfg.method.name if "method" in cfg else "car") != "car"
    reasons = weight_reasons(cfg) + subset_reasons(cfg, skipped)
    paper = paper_setting(cfg, published)
    if paper is None:
        reasons.append(f"no dataset config for {cfg.dataset.name} to take the paper's setting from")
    else:
        reasons += [r for r in [backbone_reason(cfg, paper, peer)] if r]
        reasons += setting_reasons(cfg, paper, published, peer)
    return {"comparable": not reasons, "reason": "; ".join(reasons) or None}
