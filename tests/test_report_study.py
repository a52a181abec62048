"""The study's report tables: the probe check, the seed-paired comparisons, the ablation table."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest

from harness.report import load_runs, model_tables
from harness.report.paper import REFERENCE_OPTIMIZER
from tests.test_report import METRICS, MODEL, result, write

T_975_DF2 = 4.302652729911275  # Student's t, 97.5 % quantile, 2 degrees of freedom (printed tables)

# Best-epoch accuracy (RTE) per method and seed.
RTE = {
    "head": [0.50, 0.52, 0.54],
    "lora": [0.70, 0.72, 0.74],
    "elora": [0.53, 0.52, 0.55],
    "aflora": [0.75, 0.71, 0.74],
    "aflora-nofreeze": [0.76, 0.72, 0.73],
}


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    root: Path = tmp_path_factory.mktemp("study") / "runs"
    for method, accuracies in RTE.items():
        for seed, accuracy in enumerate(accuracies, 1):
            data = result("rte", "lora", seed, {"accuracy": accuracy})  # a valid run, then renamed
            data["method"] = method
            write(root, data)
    for seed, accuracy in enumerate([0.76, 0.73, 0.75], 1):  # AFLoRA with the reference optimizer: a variant
        data = result("rte", "lora", seed, {"accuracy": accuracy})
        data.update(method="aflora", variant="train.optimizer=adamw_reference")
        data["config"] = {"train": {"optimizer": "adamw_reference"}}  # another config: another fingerprint
        path = root / MODEL / "rte" / "aflora" / f"seed{seed}" / data["variant"] / "result.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(data))
    return model_tables(load_runs(root), MODEL)


def row(table, method: str):
    csv = table.csv
    return csv[csv["method"] == method].iloc[0]


def test_probe_check_by_hand(tables):
    check = tables["floor_check"]
    lora, elora = row(check, "lora"), row(check, "elora")
    assert lora["margin"] == pytest.approx(72 - 52) and lora["needed"] == pytest.approx(2 + 2)
    assert bool(lora["beats_probe"])
    elora_std = statistics.stdev([53, 52, 55])
    assert elora["margin"] == pytest.approx(53 + 1 / 3 - 52) and elora["needed"] == pytest.approx(elora_std + 2)
    assert not bool(elora["beats_probe"])
    assert "head" not in set(check.csv["method"])  # the probe is not checked against itself
    assert "ELoRA r=1024 on RTE" in check.markdown() and "DOES NOT beat" in check.markdown()


def test_paired_interval_is_students_t_over_seed_differences(tables):
    paired = tables["paired_comparisons"].csv.set_index(["method", "other", "task"])
    diffs = [75 - 70, 71 - 72, 74 - 74]
    mean, sd = statistics.mean(diffs), statistics.stdev(diffs)
    half = T_975_DF2 * sd / math.sqrt(3)
    got = paired.loc[("aflora", "lora", "rte")]
    assert got["mean_diff"] == pytest.approx(mean)
    assert (got["low"], got["high"]) == (pytest.approx(mean - half), pytest.approx(mean + half))
    assert got["n"] == 3 and got["low"] < 0 < got["high"]  # three seeds cannot tell them apart
    elora = paired.loc[("aflora", "elora", "rte")]
    assert elora["low"] > 0  # AFLoRA clearly ahead of this ELoRA


def test_each_variant_is_compared_with_aflora_seed_by_seed(tables):
    paired = tables["paired_comparisons"].csv.set_index(["method", "other", "task"])
    optimizer = paired.loc[("aflora [train.optimizer=adamw_reference]", "aflora", "rte")]
    assert optimizer["mean_diff"] == pytest.approx(statistics.mean([76 - 75, 73 - 71, 75 - 74]))
    assert optimizer["n"] == 3
    never_frozen = paired.loc[("aflora-nofreeze", "aflora", "rte")]
    assert never_frozen["mean_diff"] == pytest.approx(statistics.mean([76 - 75, 72 - 71, 73 - 74]))
    markdown = tables["paired_comparisons"].markdown()
    assert "AFLoRA, never frozen − AFLoRA r=4" in markdown and "AFLoRA, reference AdamW − AFLoRA r=4" in markdown


def test_ablations_live_in_their_own_table(tables):
    ablations = tables["ablations"].csv.set_index("method")
    assert list(ablations.index) == ["aflora", "aflora-nofreeze", REFERENCE_OPTIMIZER]
    assert ablations.loc["aflora-nofreeze", "rte"] == pytest.approx(statistics.mean([76, 72, 73]))
    assert ablations.loc[REFERENCE_OPTIMIZER, "rte"] == pytest.approx(statistics.mean([76, 73, 75]))
    for table in ("glue_table", "floor_check", "params_table", "runtime_table"):
        assert not {"aflora-nofreeze", REFERENCE_OPTIMIZER} & set(tables[table].csv["method"]), table
    assert "head" in set(tables["glue_table"].csv["method"])  # the probe is the table's floor row


def test_ablation_runtime_is_the_geometric_mean_over_tasks_of_the_ratio_to_aflora(tmp_path):
    seconds_per_epoch = {  # per seed
        ("rte", "aflora"): [10.0, 12.0],
        ("rte", "aflora-nofreeze"): [15.0, 15.0],
        ("stsb", "aflora"): [20.0, 20.0],
        ("stsb", "aflora-nofreeze"): [50.0, 30.0],
        ("mnli", "aflora-nofreeze"): [99.0, 99.0],  # no AFLoRA run to divide by: left out
    }
    for (task, method), per_seed in seconds_per_epoch.items():
        for seed, seconds in enumerate(per_seed, 1):
            data = result(task, "lora", seed, {METRICS[task][0]: 0.7})
            data["method"] = method
            data["runtime"]["seconds_per_epoch"] = seconds
            write(tmp_path, data)
    table = model_tables(load_runs(tmp_path), MODEL)["ablations"]
    slower = table.csv.set_index("method")["seconds_per_epoch_over_aflora"]
    assert slower["aflora-nofreeze"] == pytest.approx(math.sqrt((15 / 11) * (40 / 20)))
    assert slower["aflora"] == pytest.approx(1.0)
    assert "s/epoch ÷ AFLoRA" in table.markdown() and "wall time" in table.markdown()


def test_a_hand_written_reading_survives_regeneration(tmp_path):
    root = tmp_path / "runs"
    write(root, result("rte", "lora", 1, {"accuracy": 0.7}))
    from harness.report import build_reports

    out = tmp_path / "reports"
    (out / MODEL).mkdir(parents=True)
    (out / MODEL / "reading.md").write_text("## What the tables show\n\nLoRA learns RTE here.\n")
    for _ in range(2):  # the second build reads the same reading back, not its own README
        build_reports(root, out, None, "python -m harness.report")
        readme = (out / MODEL / "README.md").read_text()
        assert readme.count("LoRA learns RTE here.") == 1
    assert readme.index("LoRA learns RTE here.") < readme.index("## GLUE results")
