"""The learning-rate grid table: scores by rate, the best marked, a mislabelled grid point refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.report.grid import grid_frame, grid_table
from harness.report.load import ReportError
from tests.test_report import MODEL, result


def write_point(grid: Path, folder: str, lr: float, method: str, accuracy: float) -> None:
    data = result("rte", "lora", 1, {"accuracy": accuracy})
    data.update(method=method, config={"train": {"lr": lr}})
    path = grid / MODEL / "rte" / method / "seed1" / folder / "result.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(data))


def test_grid_table_marks_the_best_rate_and_its_edge(tmp_path):
    for lr, accuracy in [(1e-3, 0.70), (3e-3, 0.74), (1e-2, 0.72)]:
        write_point(tmp_path, f"train.lr={lr}", lr, "lora", accuracy)
    for lr, accuracy in [(1e-2, 0.60), (3e-2, 0.66)]:
        write_point(tmp_path, f"train.lr={lr}", lr, "aflora", accuracy)
    table = grid_table(grid_frame(tmp_path), MODEL)
    best = table.csv[table.csv["best"]].set_index("method")["lr"]
    assert best.to_dict() == {"lora": 3e-3, "aflora": 3e-2}
    rows = table.md.set_index("Method")
    assert rows.loc["LoRA r=8", "At the grid's edge"] == "no" and rows.loc["AFLoRA r=4", "At the grid's edge"] == "yes"
    assert "0.003: **74.00**" in rows.loc["LoRA r=8", "train.lr: score"]


def test_a_grid_point_trained_at_another_rate_is_refused(tmp_path):
    write_point(tmp_path, "train.lr=0.001", 0.01, "lora", 0.7)  # the folder says 1e-3, the config 1e-2
    with pytest.raises(ReportError, match=r"train.lr=0.01, but its grid folder is train.lr=0.001"):
        grid_frame(tmp_path)
