"""The package layout shows the pipeline and the two halves (issue #18), and keeps its layering."""

from __future__ import annotations

import ast
from pathlib import Path

CAR = Path(__file__).resolve().parents[1] / "car"
CONF = CAR.parent / "conf"


def test_top_level_shows_the_pipeline_and_the_two_halves():
    modules = {p.stem for p in CAR.glob("*.py")}
    assert modules == {"__init__", "api", "config", "errors", "hashing", "outputs", "settings"}
    packages = {p.name for p in CAR.iterdir() if (p / "__init__.py").is_file()}
    assert {"data", "clip", "methods", "postprocess", "metrics", "run", "reporting", "apps"} <= packages


def test_conf_method_mirrors_car_methods():
    """conf/method selects CaR (car/methods/car) or a peer (car/methods/peers)."""
    from car.methods.peers.build import OTHER_METHODS, PEER_METHODS

    names = {p.stem for p in (CONF / "method").glob("*.yaml")}
    assert {"car", *PEER_METHODS, *OTHER_METHODS} <= names
    assert (CAR / "methods" / "car" / "recurrence.py").is_file() and (CAR / "methods" / "peers" / "build.py").is_file()


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_pipeline_does_not_import_the_run_or_reporting_halves():
    """data, clip, methods, postprocess and metrics never reach up into run/ or reporting/."""
    for part in ("data", "clip", "methods", "postprocess", "metrics"):
        for path in (CAR / part).rglob("*.py"):
            upward = {m for m in _imports(path) if m.startswith(("car.run", "car.reporting", "car.apps"))}
            assert not upward, f"{path.relative_to(CAR.parent)} imports {sorted(upward)}"
