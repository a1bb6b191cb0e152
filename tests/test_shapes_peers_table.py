"""The shapes table of CaR and its peers: the committed CI subset reproduces within tolerance.

results/shapes_peers.json and results/shapes_peers_expected.yaml are written by
`python scripts/shapes_peers_table.py`; the CI subset is re-run here with the real configs and
checked through `python -m car.reporting.report`, as for CaR's own shapes table.
"""

import json

import pytest

from car.reporting import report
from tests.conftest import REPO, load_script

TABLE = REPO / "results" / "shapes_peers.json"
EXPECTED = REPO / "results" / "shapes_peers_expected.yaml"


def table_script():
    return load_script(REPO / "scripts" / "shapes_peers_table.py", "shapes_peers_table")


def committed() -> dict:
    """The committed table: missing is a failure (regenerate it with `python scripts/shapes_peers_table.py`)."""
    missing = [p.name for p in (TABLE, EXPECTED) if not p.is_file()]
    assert not missing, f"results/{' and '.join(missing)} missing: run `python scripts/shapes_peers_table.py`"
    return json.loads(TABLE.read_text())


def test_committed_table_has_every_method():
    table = committed()
    assert [r["method"] for r in table["rows"]] == list(table_script().METHODS) == \
        [r["method"] for r in table["ci_rows"]]
    assert all(r["images"] == table["num_images"] for r in table["rows"])


@pytest.mark.slow
def test_ci_subset_reproduces_committed_values(tmp_path):
    table = committed()
    rows = table_script().run(table["ci_images"], tmp_path)
    assert not any(r["error"] for r in rows)
    assert report.main([str(tmp_path), "--published", str(EXPECTED)]) == 0
