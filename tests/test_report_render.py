"""One table object, three renderers (harness/report/render.py): the cells are computed once and each
format writes them its own way."""

from __future__ import annotations

import pandas as pd

from harness.report import render
from harness.report.render import Table, cell


def table() -> Table:
    rows = [
        {"Method": render.text("LoRA r=8"), "Score": cell(render.mean_std, 72.014, 0.5349, is_best=True)},
        {"Method": render.text("a_b & c"), "Score": cell(render.num, float("nan"))},
    ]
    csv = [{"method": "lora", "score": 72.014}, {"method": "a_b & c", "score": float("nan")}]
    return Table.of("demo", "Demo", rows, csv, ["a note"])


def test_each_format_renders_the_same_cells_its_own_way():
    demo = table()
    assert demo.frame("md").to_dict("records") == [
        {"Method": "LoRA r=8", "Score": "**72.01** ± 0.53"},
        {"Method": "a_b & c", "Score": "—"},
    ]
    assert demo.frame("tex").to_dict("records") == [
        {"Method": "LoRA r=8", "Score": r"\textbf{72.01} $\pm$ 0.53"},
        {"Method": r"a\_b \& c", "Score": "--"},
    ]
    assert demo.latex().splitlines()[1:6] == [
        r"\begin{tabular}{ll}",
        r"\toprule",
        r"Method & Score \\",
        r"\midrule",
        r"LoRA r=8 & \textbf{72.01} $\pm$ 0.53 \\",
    ]
    assert demo.markdown().splitlines()[2] == "| LoRA r=8 | **72.01** ± 0.53 |"


def test_the_csv_holds_the_numbers_not_the_text(tmp_path):
    paths = table().write(tmp_path)
    assert [p.name for p in paths] == ["demo.md", "demo.csv", "demo.tex"]
    csv = pd.read_csv(paths[1])
    assert csv["score"].iloc[0] == 72.014 and pd.isna(csv["score"].iloc[1])


def test_a_table_without_rows_keeps_its_columns():
    empty = Table.of("none", "None", [], [], [], columns=["Status", "Error"])
    assert list(empty.frame("tex").columns) == ["Status", "Error"]
    assert r"Status & Error \\" in empty.latex()
    assert "_No rows._" in empty.markdown()


def test_preformatted_cells_keep_their_text_per_format():
    legacy = Table.from_rows("x", "X", {"md": [{"A": "**1**"}], "tex": [{"A": r"\textbf{1}"}]}, [], [])
    assert legacy.frame("md").iloc[0, 0] == "**1**" and legacy.frame("tex").iloc[0, 0] == r"\textbf{1}"
