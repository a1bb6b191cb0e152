"""The package layout shows the pipeline and the two halves (issue #18), and keeps its layering."""

from __future__ import annotations

import ast
from pathlib import Path

CAR = Path(__file__).resolve().parents[1] / "car"
CONF = CAR.parent / "conf"


def test_top_level_shows_the_pipeline_and_the_two_halves():
    modules = {p.stem for p in CAR.glob("*.py")}
    assert modules == {"__init__", "config", "errors", "hashing", "outputs"}
    packages = {p.name for p in CAR.iterdir() if (p / "__init__.py").is_file()}
    expected = {"data", "clip", "methods", "postprocess", "metrics", "run", "reporting", "api", "apps", "settings"}
    assert expected <= packages


def test_conf_method_mirrors_car_methods():
    """Every conf/method config selects a method of the registry and every registered method has a
    config; each method's factory lives beside its code: CaR's in car/methods/car, the peers' in
    car/methods/peers."""
    from car.config import compose
    from car.methods.registry import REGISTRY

    configured = {compose([f"method={p.stem}"]).method.name for p in (CONF / "method").glob("*.yaml")}
    assert configured == set(REGISTRY)
    for name, method in REGISTRY.items():
        home = "car.methods.car" if name == "car" else "car.methods.peers"
        assert method.build.__module__ == f"{home}.build", f"{name}'s factory is {method.build.__module__}"


# The layers, lowest first. A module imports only from its own package or from a lower layer
# (car/__init__ and the shared modules of the first layer may import each other).
LAYERS = (
    ("car", "car.errors", "car.config", "car.hashing", "car.outputs", "car.settings"),
    ("car.clip", "car.data", "car.postprocess", "car.metrics"),
    ("car.methods",),
    ("car.reporting",),
    ("car.run",),
    ("car.api", "car.fidelity"),
    ("car.apps",),
)


def unit(module: str) -> str:
    """The layer entry a car module belongs to (its package under car/, or the top-level module)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def layer(module: str) -> int:
    return next(i for i, units in enumerate(LAYERS) if unit(module) in units)


def module_name(path: Path) -> str:
    parts = path.relative_to(CAR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def car_imports(path: Path) -> set[str]:
    """Every car module `path` imports, at module level or inside a function (resolved relative imports)."""
    tree = ast.parse(path.read_text())
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]  # `from car.x import module` imports car.x.module
            found.update(n for n in names if n.split(".")[0] == "car")
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "car")
    return {m for m in found if _is_module(m)}


def _is_module(name: str) -> bool:
    path = CAR.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def import_graph() -> dict[str, set[str]]:
    return {module_name(p): car_imports(p) for p in sorted(CAR.rglob("*.py"))}


def direction_errors(graph: dict[str, set[str]]) -> list[str]:
    errors = []
    for module, imported in graph.items():
        for target in sorted(imported):
            same = unit(target) == unit(module) or layer(target) == layer(module) == 0
            if not same and layer(target) >= layer(module):
                errors.append(f"{module} (layer {layer(module)}) imports {target} (layer {layer(target)})")
    return errors


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles between modules (a package's __init__ counts as the package's module)."""
    found, state, stack = [], {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_every_module_belongs_to_a_layer():
    assert all(layer(m) >= 0 for m in import_graph())  # StopIteration names a module outside LAYERS


def test_imports_only_go_down_the_layers():
    """errors/config/hashing/settings -> clip, data, postprocess, metrics -> methods -> reporting -> run
    -> api, fidelity -> apps; function-level imports included."""
    assert direction_errors(import_graph()) == []


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_checks_catch_a_forbidden_import():
    graph = import_graph()
    upward = {**graph, "car.reporting.compare": graph["car.reporting.compare"] | {"car.run.evaluation"}}
    assert direction_errors(upward) == ["car.reporting.compare (layer 3) imports car.run.evaluation (layer 4)"]
    circle = {**graph, "car.methods.car.text": graph["car.methods.car.text"] | {"car.methods.car.recurrence"}}
    assert any(c[0] == "car.methods.car.recurrence" or "car.methods.car.text" in c for c in cycles(circle))
    assert cycles(graph) == []


def test_function_level_and_relative_imports_are_read(tmp_path):
    """An import inside a function counts (the lazy imports that used to hide the circles)."""
    graph = import_graph()
    assert "car.reporting.viz" in graph["car.apps.segment"]  # imported inside functions only
    assert "car.config" in graph["car.settings.cli"]  # inside main()
