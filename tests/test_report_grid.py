"""The learning-rate grid table: scores by rate, the best marked, a mislabelled grid point refused."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from harness.report.grid import evidence_frame, grid_choice_table, grid_frame, grid_table
from harness.report.load import ReportError, load_runs
from tests.test_report import METRICS, MODEL, result


def write_point(
    grid: Path, folder: str, lr: float, method: str, accuracy: float, task: str = "rte", seed: int = 1, **train
) -> None:
    data = result(task, "lora", seed, {METRICS[task][0]: accuracy})
    data.update(method=method, config={"seed": seed, "train": {"lr": lr, "head_lr": 4e-2, **train}})
    path = grid / MODEL / task / method / f"seed{seed}" / folder / "result.json"
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


def test_a_grid_point_in_two_spellings_of_its_folder_is_refused_naming_both(tmp_path):
    """``train.lr=1e-3`` (python run.py) and ``train.lr=0.001`` (python run.py -m) of one seed: one
    run counted twice would move the point's mean over seeds."""
    write_point(tmp_path, "train.lr=1e-3", 1e-3, "lora", 0.10, seed=1)
    write_point(tmp_path, "train.lr=0.001", 1e-3, "lora", 0.30, seed=1)
    write_point(tmp_path, "train.lr=0.001", 1e-3, "lora", 0.20, seed=2)
    with pytest.raises(ReportError, match="hold the same config and seed") as refused:
        grid_frame(tmp_path)
    seed_dir = tmp_path / MODEL / "rte" / "lora" / "seed1"
    assert str(seed_dir / "train.lr=1e-3") in str(refused.value) and str(seed_dir / "train.lr=0.001") in str(
        refused.value
    )


def test_a_grid_folder_in_another_spelling_of_its_rate_is_read(tmp_path):
    write_point(tmp_path, "train.lr=1e-3", 1e-3, "lora", 0.10, seed=1)
    write_point(tmp_path, "train.lr=0.001", 1e-3, "lora", 0.20, seed=2)
    points = grid_frame(tmp_path).groupby("lr")["score"].agg(["mean", "count"])
    assert points.to_dict("index") == {1e-3: {"mean": pytest.approx(15.0), "count": 2}}


def test_the_two_task_rule_takes_the_best_mean_among_rates_that_beat_the_probe_everywhere(tmp_path):
    points = {  # (method, task): {lr: score}
        ("head", "rte"): {1e-2: 0.55, 3e-2: 0.60},  # the probe's best: 60 on RTE, 20 on STS-B
        ("head", "stsb"): {1e-2: 0.20, 3e-2: 0.10},
        ("lora", "rte"): {1e-3: 0.70, 3e-3: 0.80, 1e-2: 0.75},  # RTE alone would choose 3e-3 ...
        ("lora", "stsb"): {1e-3: 0.80, 3e-3: 0.15, 1e-2: 0.82},  # ... which collapses on STS-B
        ("aflora", "rte"): {1e-2: 0.90, 3e-2: 0.72},  # 1e-2 never ran on STS-B: not eligible
        ("aflora", "stsb"): {3e-2: 0.50},
    }
    for (method, task), scores in points.items():
        for lr, score in scores.items():
            write_point(tmp_path, f"train.lr={lr}", lr, method, score, task)
    table = grid_choice_table(grid_frame(tmp_path), MODEL)
    rows = table.csv.set_index(["method", "lr"])
    # by hand: LoRA 1e-3 (70 + 80) / 2 = 75, 1e-2 (75 + 82) / 2 = 78.5, 3e-3 below the probe's 20 on STS-B
    assert rows.loc[("lora", 1e-3), "mean"] == pytest.approx(75.0)
    assert rows.loc[("lora", 1e-2), "mean"] == pytest.approx(78.5)
    assert not rows.loc[("lora", 3e-3), "eligible"] and not rows.loc[("aflora", 1e-2), "eligible"]
    chosen = table.csv[table.csv["chosen"]].set_index("method")["lr"].to_dict()
    assert chosen == {"head": 1e-2, "lora": 1e-2, "aflora": 3e-2}  # head: (55 + 20) / 2 > (60 + 10) / 2
    cells = table.md.set_index("Method")["train.lr: mean over tasks"]
    assert "0.003: below the probe" in cells["LoRA r=8"] and "0.01: not on every task yet" in cells["AFLoRA r=4"]


def test_a_rate_is_ruled_out_by_another_seed_of_its_exact_config_that_fell_below_the_probe(tmp_path):
    grid, runs = tmp_path / "grid", tmp_path / "runs"
    points = {  # (method, task): {lr: score}
        ("head", "rte"): {1e-2: 0.60},
        ("head", "stsb"): {1e-2: 0.20},
        ("lora", "rte"): {1e-3: 0.70, 1e-2: 0.75},
        ("lora", "stsb"): {1e-3: 0.80, 1e-2: 0.82},  # the grid alone chooses 1e-2 (78.5 against 75)
    }
    for (method, task), scores in points.items():
        for lr, score in scores.items():
            write_point(grid, f"train.lr={lr}", lr, method, score, task)
    write_point(runs, "a", 1e-2, "lora", 0.19, "stsb", seed=2, head_lr=1e-3)  # another config: no evidence
    write_point(runs, "b", 1e-2, "lora", 0.10, "mnli", seed=3)  # not a grid task: no evidence
    write_point(runs, "c", 1e-3, "lora", 0.21, "stsb", seed=2)  # low, but above the probe's 20
    unruled = grid_choice_table(grid_frame(grid), MODEL, evidence=evidence_frame([runs]))
    assert unruled.csv[unruled.csv["chosen"]].set_index("method")["lr"].to_dict() == {"head": 1e-2, "lora": 1e-2}

    write_point(runs, "d", 1e-2, "lora", 0.19, "stsb", seed=3)  # seed 3 of the 1e-2 point collapses
    table = grid_choice_table(grid_frame(grid), MODEL, evidence=evidence_frame([runs]))
    rows = table.csv.set_index(["method", "lr"])
    assert not rows.loc[("lora", 1e-2), "eligible"] and rows.loc[("lora", 1e-2), "mean"] == pytest.approx(78.5)
    assert table.csv[table.csv["chosen"]].set_index("method")["lr"].to_dict() == {"head": 1e-2, "lora": 1e-3}
    assert "0.01: a run at it fell below the probe" in table.md.set_index("Method").loc["LoRA r=8"].iloc[0]


def test_evidence_already_loaded_is_not_read_again(tmp_path):
    runs = tmp_path / "runs"
    write_point(runs, "a", 1e-2, "lora", 0.19, "stsb", seed=2)
    write_point(runs, "b", 1e-3, "lora", 0.21, "stsb", seed=3)
    read = evidence_frame([runs])
    assert len(read) == 2
    pd.testing.assert_frame_equal(evidence_frame([runs], {runs: load_runs(runs)}), read)
    assert evidence_frame([runs, runs], {runs: []}).empty  # the loaded list stands for the folder
