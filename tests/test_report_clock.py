"""The runtime tables compare CPU runs on process CPU time, GPU runs on wall time, and say which."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.report import load_runs, model_tables
from tests.test_report import MODEL, result, write

# (wall seconds per epoch, CPU seconds per epoch, wall samples/s): AFLoRA is faster on the wall
# clock (5 vs 10 s) but only a little on CPU time (18 vs 20 s): a neighbour slowed ELoRA's run.
TIMES = {"elora": (10.0, 20.0, 100.0), "aflora": (5.0, 18.0, 200.0)}


def timed(method: str, device: str = "cpu", cpu: bool = True) -> dict:
    data = result("rte", method, 1, {"accuracy": 0.7})
    wall, cpu_per_epoch, samples = TIMES[method]
    data["runtime"].update(
        device=device, seconds_per_epoch=wall, train_seconds=2 * wall, train_samples_per_second=samples
    )
    if cpu:
        data["runtime"].update(train_cpu_seconds=2 * cpu_per_epoch, cpu_seconds_per_epoch=cpu_per_epoch)
    return data


def runtime_tables(root: Path, *runs: dict):
    for data in runs:
        write(root, data)
    tables = model_tables(load_runs(root), MODEL)
    return tables["runtime_table"], tables["runtime_summary"]


def test_cpu_runs_compare_on_cpu_time(tmp_path):
    table, summary = runtime_tables(tmp_path, timed("elora"), timed("aflora"))
    assert "CPU time" in table.title and "CPU time" in summary.title
    assert any(note.startswith("Clock: process CPU time") for note in table.notes)
    row = table.csv.set_index(["task", "method"]).loc[("rte", "aflora")]
    assert row["seconds_per_epoch"] == 18.0 and row["seconds_per_epoch_over_elora"] == pytest.approx(18 / 20)
    # samples per CPU second: examples x epochs / CPU seconds, i.e. wall samples/s x wall s / CPU s
    aflora_rate, elora_rate = 200.0 * 10 / 36, 100.0 * 20 / 40
    assert row["train_samples_per_second_over_elora"] == pytest.approx(aflora_rate / elora_rate)
    assert set(table.csv["clock"]) == {"CPU time"}


def test_a_run_without_cpu_time_keeps_the_wall_clock_and_says_why(tmp_path):
    table, _ = runtime_tables(tmp_path, timed("elora", cpu=False), timed("aflora"))
    assert "wall time" in table.title
    assert any("recorded no CPU time" in note for note in table.notes)
    row = table.csv.set_index(["task", "method"]).loc[("rte", "aflora")]
    assert row["seconds_per_epoch_over_elora"] == pytest.approx(5 / 10)


def test_gpu_runs_compare_on_wall_time(tmp_path):
    table, summary = runtime_tables(tmp_path, timed("elora", "cuda"), timed("aflora", "cuda"))
    assert "wall time" in table.title and "wall time" in summary.title
    assert any("GPU" in note for note in table.notes)
    assert summary.csv.set_index("method").loc["aflora", "seconds_per_epoch_over_elora"] == pytest.approx(0.5)
