"""The speed benchmark (harness.bench): its quick mode runs on tiny-bert and writes every row, and
each row's FLOP count equals a hand computation. Speed targets are reported, never asserted here."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from harness.bench.__main__ import main, parse_args
from harness.bench.epoch import metric_noise, run_overrides
from harness.bench.rows import CONF_DIR, ROWS, method_of
from harness.paths import REPO

# tiny-bert (conf/model/tiny-bert.yaml): 2 layers, hidden 32, FFN 64. Per token, each layer runs
# q, k, v, attention.output (32 -> 32), intermediate (32 -> 64) and output (64 -> 32).
LAYERS, HIDDEN, FFN = 2, 32, 64
BASE = LAYERS * (4 * HIDDEN * HIDDEN + HIDDEN * FFN + FFN * HIDDEN)  # pooler and classifier: once per sequence


def adapter_path(r: int) -> int:
    """r·in + r·out on the six adapted linears of every layer."""
    return LAYERS * r * (4 * (HIDDEN + HIDDEN) + 2 * (HIDDEN + FFN))


EXPECTED_MACS = {
    "floor": BASE,
    "full": BASE,
    "lora": BASE + adapter_path(8),  # conf/method/lora.yaml: r = 8
    "adalora": BASE + adapter_path(12),  # init_r = 12: pruned ranks are masked, still computed
    "elora": BASE + adapter_path(1024),
    "vera": BASE + adapter_path(1024),
    "sora": BASE + adapter_path(8),  # conf/method/sora.yaml: r_max = 8; its gate scales, adds no MACs
    "aflora": BASE + adapter_path(4),
    "aflora-nofreezer": BASE + adapter_path(4),
    "aflora-frozen": BASE + adapter_path(4),
    "aflora-frozen-unfolded": BASE + adapter_path(4),
}


def test_hand_computation_itself():
    assert BASE == 16_384
    assert EXPECTED_MACS["lora"] == 23_552
    assert EXPECTED_MACS["adalora"] == 27_136
    assert EXPECTED_MACS["elora"] == 933_888
    assert EXPECTED_MACS["aflora"] == 19_968


def test_cli_takes_hydra_style_and_flags():
    a = parse_args(["model=deberta-v3-base-random", "device=cuda"])
    b = parse_args(["--model", "deberta-v3-base-random", "--device", "cuda"])
    assert (
        (a.model, a.device, a.batch, a.seq)
        == (b.model, b.device, b.batch, b.seq)
        == ("deberta-v3-base-random", "cuda", 32, 256)
    )
    quick = parse_args(["model=tiny-bert", "quick=true", "reps=4"])
    assert quick.quick and quick.batch == 2 and quick.reps == 4
    assert parse_args(["--quick"]).quick
    assert parse_args([]).out == str(REPO / "reports" / "bench")
    with pytest.raises(SystemExit):
        parse_args(["device=tpu"])


def test_epoch_mode_runs_differ_only_in_padding():
    opts = SimpleNamespace(
        task="rte", model="minilm", method="lora", train_samples=None, device="cpu", group_by_length=True
    )
    padded = run_overrides(opts, "padded", Path("/tmp/p"))
    dynamic = run_overrides(opts, "dynamic", Path("/tmp/d"))
    assert "data.pad_to_max_length=true" in padded and "data.pad_to_max_length=false" in dynamic
    assert "train.group_by_length=false" in padded and "train.group_by_length=true" in dynamic
    assert "data.max_seq_length=256" in padded and "data.max_seq_length=256" in dynamic
    differ = set(padded) ^ set(dynamic)
    assert {o.split("=")[0] for o in differ} == {"runs_dir", "data.pad_to_max_length", "train.group_by_length"}


def test_epoch_report_sets_the_metric_difference_beside_its_standard_error():
    runs = {"dynamic": {"metric": "accuracy", "value": 0.50}, "padded": {"metric": "accuracy", "value": 0.46}}
    (line,) = metric_noise(runs, {"train": 2490, "validation": 277})
    # By hand: p = 0.48, sqrt(2 * 0.48 * 0.52 / 277) = sqrt(0.0018022) = 0.04245.
    assert "dynamic - padded = +0.0400" in line and "on 277 validation examples is 0.0425" in line
    runs = {name: {**run, "metric": "matthews_correlation"} for name, run in runs.items()}
    assert metric_noise(runs, {"validation": 1043}) == [
        "- Validation matthews_correlation: dynamic - padded = +0.0400."
    ]


@pytest.fixture
def one_thread():
    """A tiny model gains nothing from intra-op threads on a shared 2-core box."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_quick_bench_on_tiny_bert(tmp_path, one_thread, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where a quick run's temporary folder goes
    assert main(["model=tiny-bert", "quick=true", "threads=1"]) == 0
    (out,) = tmp_path.glob("bench-quick-*")  # not reports/bench/: a smoke test's numbers are not a report
    report = json.loads((out / "tiny-bert-cpu-quick.json").read_text())
    markdown = (out / "tiny-bert-cpu-quick.md").read_text()

    expected_rows = [r for r in ROWS if method_of(r) is None or (CONF_DIR / "method" / f"{method_of(r)}.yaml").exists()]
    rows = {r["name"]: r for r in report["rows"]}
    assert list(rows) == expected_rows
    for name, row in rows.items():
        assert row["macs_per_token"]["total"] == EXPECTED_MACS[name], name
        assert row["step_ms"] > 0 and len(row["step_seconds"]) == report["settings"]["reps"]
        assert f"| {name} |" in markdown

    assert rows["floor"]["trainable"] == 0
    # Dry-run freezer: the start row keeps its trainable projections; the frozen row keeps d, b only:
    # per layer d: 6 x 4, b: 3 x 32 + 64 + 32 (q, k, v, attention.output; intermediate; output).
    assert rows["aflora-frozen"]["trainable"] == LAYERS * (6 * 4 + 4 * HIDDEN + FFN + HIDDEN) == 496
    assert rows["aflora"]["trainable"] == rows["aflora-nofreezer"]["trainable"] > rows["aflora-frozen"]["trainable"]
    assert rows["aflora-frozen-unfolded"]["trainable"] == rows["aflora-frozen"]["trainable"]
    assert "Folding: `aflora-frozen` / `aflora-frozen-unfolded` step = " in markdown
    assert report["freezer"]["per_step_ms"] > 0
    assert [t["name"] for t in report["targets"]] == [
        "aflora_frozen_vs_elora",
        "freezer_bookkeeping",
        "aflora_frozen_vs_floor",
    ]
    # A 2 x 16 batch over 3 rounds cannot judge a speed target: each is n/a, with its value.
    assert [t["pass"] for t in report["targets"]] == [None] * 3 and report["targets"][0]["value"] > 0
    assert markdown.count("- n/a:") == 3 and "PASS" not in markdown and "FAIL" not in markdown


def test_flops_mode_counts_every_row_without_timing(tmp_path):
    assert main(["mode=flops", "model=tiny-bert", f"out={tmp_path}"]) == 0
    table = (tmp_path / "tiny-bert-flops.md").read_text()
    for name, macs in EXPECTED_MACS.items():
        if method_of(name) is None or (CONF_DIR / "method" / f"{method_of(name)}.yaml").exists():
            assert f"| {name} |" in table and f"| {macs:,} |" in table, name
    lora_vs_elora = EXPECTED_MACS["lora"] / EXPECTED_MACS["elora"]
    lora_params = LAYERS * 8 * (4 * 2 * HIDDEN + 2 * (HIDDEN + FFN))  # r (in + out) per adapted linear
    assert f"| lora | {lora_params:,} | {EXPECTED_MACS['lora']:,} | {lora_vs_elora:.4f} | 1.0000 |" in table
