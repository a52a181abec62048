"""The speed benchmark (harness.bench): its quick mode runs on tiny-bert and writes every row, and
each row's FLOP count equals a hand computation. Speed targets are reported, never asserted here."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from harness.bench import peak, report
from harness.bench.__main__ import main, parse_args
from harness.bench.epoch import metric_noise, run_overrides
from harness.bench.rows import CONF_DIR, ROWS, method_of
from harness.bench.timing import Timing
from harness.bench.variants import Variant, parse_variant
from harness.core.paths import REPO

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


# Weight-gradient MACs per token of a training step: the trainable matrices that act as linear maps.
AFLORA_FFN = LAYERS * 4 * 2 * (HIDDEN + FFN)  # conf/method/aflora.yaml: only the FFN pair trains, r = 4
WEIGHT_GRAD_MACS = {
    "floor": 0,
    "full": BASE,  # every backbone linear trains
    "lora": adapter_path(8),  # A (r, in) and B (out, r)
    "adalora": adapter_path(12),  # its E (r, 1) is a vector of singular values: elementwise
    "elora": 0,  # A and B frozen: only the vectors d, b train
    "vera": 0,
    "sora": adapter_path(8),
    "aflora": AFLORA_FFN,
    "aflora-nofreezer": AFLORA_FFN,
    "aflora-frozen": 0,
    "aflora-frozen-unfolded": 0,
}


def test_hand_computation_itself():
    assert BASE == 16_384
    assert EXPECTED_MACS["lora"] == 23_552
    assert EXPECTED_MACS["adalora"] == 27_136
    assert EXPECTED_MACS["elora"] == 933_888
    assert EXPECTED_MACS["aflora"] == 19_968


def test_cli_takes_hydra_style_and_flags(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # a quick run's folder: none left behind in /tmp
    a = parse_args(["model=deberta-v3-base-random", "device=cuda"])
    b = parse_args(["--model", "deberta-v3-base-random", "--device", "cuda"])
    assert (
        (a.model, a.device, a.batch, a.seq)
        == (b.model, b.device, b.batch, b.seq)
        == ("deberta-v3-base-random", "cuda", 32, 256)
    )
    quick = parse_args(["model=tiny-bert", "quick=true", "reps=4"])
    assert quick.quick and quick.batch == 2 and quick.reps == 4
    assert Path(quick.out).parent == tmp_path and Path(quick.out).name.startswith("bench-quick-")
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
    tokens = report["settings"]["batch"] * report["settings"]["seq"]
    for name, row in rows.items():
        assert row["macs_per_token"]["total"] == EXPECTED_MACS[name], name
        # forward + input gradients (the same again) + weight gradients of the trainable matrices
        assert row["train_macs_per_token"]["total"] == 2 * EXPECTED_MACS[name] + WEIGHT_GRAD_MACS[name], name
        assert row["step_flops"] == 2 * row["train_macs_per_token"]["total"] * tokens
        assert row["step_ms"] > 0 and len(row["step_seconds"]) == report["settings"]["reps"]
        assert row["mfu"] == pytest.approx(row["model_flops_per_second"] / report["peaks"]["fp32"]["peak"])
        assert f"| {name} |" in markdown
    assert list(report["peaks"]) == ["fp32"] and "Peak, fp32: " in markdown and "| MFU |" in markdown

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
        "aflora_run_vs_lora@fp32",
    ]
    # A 2 x 16 batch over 3 rounds cannot judge a speed target: each is n/a, with its value.
    assert [t["pass"] for t in report["targets"]] == [None] * 4 and report["targets"][0]["value"] > 0
    assert markdown.count("- n/a:") == 4 and "PASS" not in markdown and "FAIL" not in markdown


def test_peak_is_the_best_shape_at_the_clock_given():
    """A clock that advances 0.5 s per product: every shape's FLOP/s is 2·tokens·in·out / 0.5."""
    ticks = iter(range(10_000))

    def clock() -> float:
        return 0.5 * next(ticks)  # read before and after each product: 0.5 s apart

    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 4), torch.nn.Linear(4, 8))
    peaks = peak.measure_peaks(model, 16, ["fp32", "bf16"], torch.device("cpu"), clock, reps=3)
    by_hand = 2 * 16 * 4 * 8 / 0.5  # both distinct shapes (4, 8) and (8, 4) have 4·8 MACs per token
    for precision in ("fp32", "bf16"):
        assert peaks[precision]["shapes"] == {"4x8": by_hand, "8x4": by_hand}
        assert peaks[precision]["peak"] == by_hand


def test_mfu_against_a_hand_computation():
    # 1,000 training MACs per token, a batch of 4 x 8 tokens: 2 x 1,000 x 32 = 64,000 FLOPs per step.
    assert peak.step_flops(1_000, 32) == 64_000
    # 64,000 FLOPs in 0.4 s = 160,000 FLOP/s; against a peak of 640,000 FLOP/s that is 0.25.
    assert peak.mfu(64_000, 0.4, 640_000) == pytest.approx(0.25)
    # The report takes a row's median step and its own precision's peak.
    variant = Variant("bf16")
    row = SimpleNamespace(name="lora", row="lora", variant=variant, note="", trainable=1, head=1)
    timing = Timing(seconds=[0.5, 0.4, 0.3], wall=[0.5, 0.4, 0.3], bookkeeping=[0.0] * 3)
    macs = {"lora": {"total": 500}}
    train_macs = {"lora": {"total": 1_000}}
    peaks = {"fp32": {"peak": 1.0}, "bf16": {"peak": 640_000.0}}
    (record,), _, _ = report.summarise([row], {"lora": timing}, macs, train_macs, peaks, None, 4, 32)
    assert record["model_flops_per_second"] == pytest.approx(160_000) and record["mfu"] == pytest.approx(0.25)


def test_variants_parse_and_name_the_bad_word():
    assert parse_variant("bf16+eager+fused") == Variant("bf16", ("eager", "fused"))
    assert parse_variant("bf16+eager").train_overrides == {"attn_implementation": "eager"}
    for bad, word in (("fp16", "'fp16'"), ("bf16+fast", "'fast'"), ("fp32+foreach+fused", "exclude")):
        with pytest.raises(ValueError, match=word):
            parse_variant(bad)


def test_flops_mode_counts_every_row_without_timing(tmp_path):
    assert main(["mode=flops", "model=tiny-bert", f"out={tmp_path}"]) == 0
    table = (tmp_path / "tiny-bert-flops.md").read_text()
    for name, macs in EXPECTED_MACS.items():
        if method_of(name) is None or (CONF_DIR / "method" / f"{method_of(name)}.yaml").exists():
            assert f"| {name} |" in table and f"| {macs:,} |" in table, name
    lora_vs_elora = EXPECTED_MACS["lora"] / EXPECTED_MACS["elora"]
    lora_params = LAYERS * 8 * (4 * 2 * HIDDEN + 2 * (HIDDEN + FFN))  # r (in + out) per adapted linear
    assert f"| lora | {lora_params:,} | {EXPECTED_MACS['lora']:,} | {lora_vs_elora:.4f} | 1.0000 |" in table
