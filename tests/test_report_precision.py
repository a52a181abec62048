"""The precision-parity table: bf16 repeats of study cells against their fp32 runs, by hand."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from harness.report import load_runs, model_tables
from tests.test_report import MODEL, result, write

FP32 = [0.70, 0.72, 0.74]
BF16 = [0.71, 0.70, 0.75]
FREEZE_FP32 = {"a.A": 0, "b.A": 20, "c.A": 40}  # a.A: frozen from the start, not compared
FREEZE_BF16 = [{"a.A": 0, "b.A": 20, "c.A": 40}, {"a.A": 0, "b.A": 20, "c.A": 50}, {"a.A": 0, "b.A": 30, "c.A": 40}]


@pytest.fixture(scope="module")
def parity(tmp_path_factory):
    root: Path = tmp_path_factory.mktemp("parity") / "runs"
    for seed, (a32, a16) in enumerate(zip(FP32, BF16, strict=True), 1):
        data = result("rte", "lora", seed, {"accuracy": a32})
        data.update(method="aflora", freezing=FREEZE_FP32)
        write(root, data)
        data = result("rte", "lora", seed, {"accuracy": a16})
        data.update(method="aflora", variant="train.precision=bf16", freezing=FREEZE_BF16[seed - 1])
        data["config"] = {"train": {"precision": "bf16"}}  # another config: another fingerprint
        path = root / MODEL / "rte" / "aflora" / f"seed{seed}" / data["variant"] / "result.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(data))
    return model_tables(load_runs(root), MODEL)


def test_parity_row_by_hand(parity):
    row = parity["precision_parity"].csv.iloc[0]
    assert (row["method"], row["task"]) == ("aflora", "rte")
    assert row["fp32_mean"] == pytest.approx(72) and row["fp32_std"] == pytest.approx(2)
    assert row["bf16_mean"] == pytest.approx(72)
    assert row["paired_diff"] == pytest.approx(statistics.mean([1, -2, 1]))
    assert row["within_fp32_std"] == "yes"  # |72 - 72| <= 2
    # Trained projections b.A and c.A: fp32 30 every seed; bf16 30, 35, 35; same steps 2 + 1 + 1 of 6.
    assert row["freeze_step_fp32"] == pytest.approx(30)
    assert row["freeze_step_bf16"] == pytest.approx((30 + 35 + 35) / 3)
    assert (row["freeze_same"], row["freeze_compared"]) == (4, 6)


def test_bf16_repeats_stay_out_of_the_method_tables(parity):
    assert set(parity["glue_table"].csv["method"]) == {"aflora"}
    assert "precision_parity" in parity
