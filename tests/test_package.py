"""The installable package (issue #18): the configs and published numbers ship inside it, the console
scripts resolve, and a wheel installed outside the checkout runs `car-evaluate` from an empty
directory, writing under that directory and reading its configs from the installed package."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from car.config import CONFIG_DIR, FROM_CHECKOUT, REPO_ROOT, RESULTS_DIR, compose

SCRIPTS = {"car-evaluate": "car.run.cli:main", "car-report": "car.reporting.report:main",
           "car-compare": "car.run.compare:main",
           "car-sweep": "car.reporting.sweep:main", "car-report-html": "car.reporting.report_html:main",
           "car-segment": "car.apps.segment:main", "car-demo": "car.apps.demo:main",
           "car-davis": "car.metrics.davis.cli:main"}
# what a wheel is built from: pyproject.toml's readme, setup.py's package_dir sources
SOURCES = ("pyproject.toml", "setup.py", "README.md", "car", "conf", "results")


def _env(**extra: str) -> dict:
    """The test environment minus anything that would point a run at the checkout."""
    drop = {"PYTHONPATH", "CAR_DATA_ROOT", "CAR_OUTPUT_ROOT", "CAR_WEIGHTS_DIR"}
    return {**{k: v for k, v in os.environ.items() if k not in drop}, "HF_HUB_OFFLINE": "1", **extra}


def test_console_scripts_declared():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == SCRIPTS


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_console_script_entry_point_runs(name):
    """What the generated wrapper does (`sys.exit(main())`), with --help."""
    module, attr = SCRIPTS[name].split(":")
    code = f"import sys; sys.argv[0] = {name!r}; from {module} import {attr}; sys.exit({attr}())"
    proc = subprocess.run([sys.executable, "-c", code, "--help"], cwd=REPO_ROOT, env=_env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    if name == "car-evaluate":  # Hydra's help lists the config groups found in the configs
        listing = proc.stdout.split("== Config ==")[0]  # the "Configuration groups" section
        groups = {line.split(":", 1)[0]: line.split(":", 1)[1] for line in listing.splitlines()
                  if line.startswith(("dataset:", "method:"))}
        assert {"voc", "coco_object", "context59", "shapes"} <= {g.strip() for g in groups["dataset"].split(",")}
        assert {"car", "clearclip", "groupvit"} <= {g.strip() for g in groups["method"].split(",")}
    else:
        assert proc.stdout.startswith("usage:")


def test_checkout_paths_unchanged():
    """From a checkout the repository's conf/ and results/ are used and runs write to <repo>/outputs."""
    assert FROM_CHECKOUT and CONFIG_DIR == REPO_ROOT / "conf" and RESULTS_DIR == REPO_ROOT / "results"
    paths = compose().paths
    assert paths.root_dir == str(REPO_ROOT)
    assert paths.results_dir == str(REPO_ROOT / "results")
    assert paths.assets_dir == str(REPO_ROOT / "car" / "assets")
    if "CAR_OUTPUT_ROOT" not in os.environ:
        assert paths.output_root == str(REPO_ROOT / "outputs")


# --- a real wheel, installed outside the checkout ---------------------------------------------------

def _copy_sources(dest: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    dest.mkdir()
    for name in SOURCES:
        src = REPO_ROOT / name
        (shutil.copytree(src, dest / name, ignore=ignore) if src.is_dir() else shutil.copy2(src, dest / name))
    return dest


def _scratch_venv(path: Path) -> Path:
    """A venv without pip whose Python also sees the test environment's packages (a .pth file), so
    installing car-bench with --no-deps downloads nothing."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
    python = path / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    ours = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (Path(site) / "_car_test_env.pth").write_text("\n".join(ours) + "\n")
    return python


def _pip_install(python: Path, *args: str, cwd: Path | None = None) -> None:
    # --ignore-installed: the test environment's own car-bench (seen through the .pth) is left alone
    proc = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed",
                           "--no-build-isolation", "-q", *args], cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


@pytest.fixture(scope="module")
def wheel_install(tmp_path_factory) -> Path:
    """A wheel built from a copy of the sources, installed into a scratch venv: its bin/ folder."""
    root = tmp_path_factory.mktemp("wheel")
    src = _copy_sources(root / "src")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "-q", "-w", str(root / "dist"), str(src)], env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (wheel,) = (root / "dist").glob("car_bench-*.whl")
    python = _scratch_venv(root / "venv")
    _pip_install(python, str(wheel))
    return python.parent


@pytest.mark.slow
def test_wheel_runs_from_an_empty_directory(wheel_install, tmp_path):
    bin_dir, cwd = wheel_install, tmp_path / "empty"
    cwd.mkdir()
    site = Path(subprocess.run([str(bin_dir / "python"), "-c", "import car; print(car.__file__)"], cwd=cwd, env=_env(),
                               check=True, capture_output=True, text=True).stdout.strip()).parent.parent
    assert site.is_relative_to(bin_dir.parent) and not site.is_relative_to(REPO_ROOT)  # the installed copy

    proc = subprocess.run([str(bin_dir / "car-evaluate"), "dataset.limit=3"], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (metrics_path,) = (cwd / "outputs" / "evaluate" / "shapes").glob("*/metrics.json")
    metrics = json.loads(metrics_path.read_text())
    assert metrics["num_images"] == 3
    paths = metrics["config"]["paths"]
    assert paths["root_dir"] == str(cwd) and paths["output_root"] == str(cwd / "outputs")
    assert paths["data_root"] == str(cwd / "data") and paths["weights_dir"] == str(cwd / "weights")
    assert paths["results_dir"] == str(site / "car" / "_results")  # shipped inside the package
    assert paths["assets_dir"] == str(site / "car" / "assets")
    assert (site / "car" / "conf" / "config.yaml").is_file()
    assert (site / "car" / "_results" / "published.yaml").is_file()
    assert (metrics_path.parent / "evaluate.log").is_file()  # same Hydra job name as `python evaluate.py`

    # the other commands, installed as scripts: car-report defaults to the packaged published.yaml
    run_dir = metrics_path.parent
    report = subprocess.run([str(bin_dir / "car-report"), str(run_dir), "--allow-missing"], cwd=cwd, env=_env(),
                            capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    assert f"expected values: {site / 'car' / '_results' / 'published.yaml'}" in report.stdout
    sweep = subprocess.run([str(bin_dir / "car-sweep"), str(run_dir.parent)], cwd=cwd, env=_env(), capture_output=True,
                           text=True, timeout=120)
    assert sweep.returncode == 0, sweep.stderr
    assert (run_dir.parent / "sweep_summary.md").is_file()
    compare = subprocess.run([str(bin_dir / "car-compare"), "--help"], cwd=cwd, env=_env(), capture_output=True,
                             text=True, timeout=120)
    assert compare.returncode == 0 and compare.stdout.startswith("usage:"), compare.stderr


@pytest.mark.slow
def test_editable_install_uses_the_checkout(tmp_path):
    """`pip install -e .` with this layout: configs and results come from the checkout's conf/ and
    results/, and the console scripts exist."""
    src = _copy_sources(tmp_path / "src")
    python = _scratch_venv(tmp_path / "venv")
    _pip_install(python, "-e", str(src))
    assert all((python.parent / name).is_file() for name in SCRIPTS)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    code = ("import car, car.config as c; from car.config import compose; p = compose().paths; "
            "print(car.__file__, c.CONFIG_DIR, p.results_dir, p.output_root, sep='\\n')")
    out = subprocess.run([str(python), "-c", code], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[:4] == [str(src / "car" / "__init__.py"), str(src / "conf"), str(src / "results"),
                                          str(src / "outputs")]
