"""results/reliability.md's bad-input table is generated from the tests (scripts/reliability_table.py):
it lists exactly the inputs of the tests marked `bad_input`, each with a recorded answer."""

from __future__ import annotations

from tests.conftest import REPO, load_script

table = load_script(REPO / "scripts" / "reliability_table.py", "car_reliability_table")


def test_table_lists_exactly_the_marked_tests(capsys):
    assert table.main(["--check"]) == 0, capsys.readouterr().out + " (run python scripts/reliability_table.py)"


def test_every_row_has_an_answer_and_its_test():
    rows = table.table_rows(table.RESULTS.read_text(encoding="utf-8"))
    marked = table.marked_inputs()
    assert len(rows) == len(marked) >= 40
    for what, entry, answer, test in rows:
        assert answer and test.split("::")[0] == marked[(what, entry)], (what, test)


def test_the_check_sees_a_missing_row(tmp_path, monkeypatch):
    text = table.RESULTS.read_text(encoding="utf-8")
    first = next(line for line in text.split(table.BEGIN, 1)[1].splitlines() if line.startswith("| ") and
                 "---" not in line and "bad input |" not in line)
    monkeypatch.setattr(table, "RESULTS", tmp_path / "reliability.md")
    (tmp_path / "reliability.md").write_text(text.replace(first + "\n", ""), encoding="utf-8")
    assert table.main(["--check"]) == 1
