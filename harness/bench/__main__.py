"""``python -m harness.bench``: the side-by-side speed benchmark (and the epoch throughput mode).

    python -m harness.bench                                       # MiniLM, CPU, a few minutes
    python -m harness.bench model=deberta-v3-base-random device=cuda
    python -m harness.bench model=deberta-v3-base-random device=cuda precision=bf16   # bf16 autocast
    python -m harness.bench quick=true                            # a smoke test in seconds, into a temporary folder
    python -m harness.bench rows=elora,aflora-frozen,floor reps=9       # some rows only
    python -m harness.bench rows=lora,aflora,elora variants=fp32,bf16,bf16+eager batch=32 seq=64   # levers
    GLUE_DIR=../shared/glue python -m harness.bench mode=epoch          # RTE epoch: padded vs dynamic
    GLUE_DIR=../shared/glue python -m harness.bench mode=epoch train_samples=640   # a shorter epoch
    python -m harness.bench mode=flops model=deberta-v3-base-random   # FLOPs and parameters only, no timing
    GLUE_DIR=../shared/glue python -m harness.bench mode=eval task=mrpc reps=3 variants=fp32,bf16+eager   # eval batch

Arguments are ``key=value`` (Hydra style) or ``--key value``. Writes
``<out>/<model>-<device>[-<variants>][-quick].md`` and ``.json`` (epoch mode: ``<out>/epoch-<model>-<task>.*``,
eval mode: ``<out>/eval-<model>-<task>.*``).
Every speed run first measures the machine's matmul peak (``peak.py``) and reports each row's model
FLOP/s and MFU against it.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

from harness.core.paths import REPO
from harness.execution.quiet import quiet_libraries

# Per-device defaults. CPU: a few minutes on 2 shared cores (ELoRA and VeRA at r = 1024 cost ~5x
# the backbone there), timed in CPU time on one thread (timing.py: wall time on a shared machine
# measures the neighbours). CUDA: the reference max length, batch 32, wall time.
DEFAULTS = {
    "cpu": {"batch": 8, "seq": 128, "warmup": 1, "reps": 7, "clock": "cpu", "threads": 1},
    "cuda": {"batch": 32, "seq": 256, "warmup": 3, "reps": 20, "clock": "wall", "threads": None},
}
QUICK = {"batch": 2, "seq": 16, "warmup": 1, "reps": 3}

log = logging.getLogger("harness.bench")


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    # key=value -> --key=value, so argparse checks both spellings alike.
    argv = [f"--{a}" if "=" in a and not a.startswith("-") else a for a in argv]
    p = argparse.ArgumentParser(prog="python -m harness.bench", description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=["speed", "epoch", "flops", "eval"], default="speed")
    p.add_argument("--model", default="minilm", help="a conf/model name")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument(
        "--precision", choices=["fp32", "bf16"], default="fp32", help="bf16: forward under bfloat16 autocast"
    )
    p.add_argument(
        "--variants",
        help="comma-separated, e.g. fp32,bf16,bf16+eager (default: precision alone); harness/bench/variants.py",
    )
    p.add_argument("--quick", type=_bool, nargs="?", const=True, default=False, help="tiny batch, 3 rounds")
    p.add_argument("--batch", type=int, help="sequences per step (default per device)")
    p.add_argument("--seq", type=int, help="tokens per sequence (default per device)")
    p.add_argument("--warmup", type=int, help="untimed rounds")
    p.add_argument("--reps", type=int, help="timed rounds")
    p.add_argument("--rows", help="comma-separated rows (default: all); see harness/bench/rows.py")
    p.add_argument("--clock", choices=["wall", "cpu"], help="step clock (default: cpu on CPU, wall on CUDA)")
    p.add_argument(
        "--threads", type=int, help="torch intra-op threads, epoch mode's runs too (default: 1 on CPU, torch's on CUDA)"
    )
    p.add_argument(
        "--out", help="report folder (default: reports/bench; quick=true: a new temporary folder, a smoke test)"
    )
    p.add_argument("--eval_batches", default="32,64,128,256", help="eval mode: evaluation batch sizes")
    # epoch mode
    p.add_argument("--task", default="rte")
    p.add_argument("--method", default="lora", help="epoch mode: the method both runs train")
    p.add_argument("--train_samples", type=int, help="epoch mode: train on the first N examples only")
    p.add_argument("--group_by_length", type=_bool, default=True, help="epoch mode: dynamic run groups by length")
    p.add_argument("--glue_dir", help="epoch mode: local GLUE copy (default: $GLUE_DIR)")
    p.add_argument("--runs_dir", help="epoch mode: where the two runs go (default: a temporary folder)")
    p.add_argument(
        "--cache_timings", type=_bool, default=True, help="epoch mode: also time a cold and a warm tokenisation"
    )
    opts = p.parse_args(argv)
    for key, value in {**DEFAULTS[opts.device], **(QUICK if opts.quick else {})}.items():
        if getattr(opts, key) is None:
            setattr(opts, key, value)
    if opts.out is None:
        opts.out = tempfile.mkdtemp(prefix="bench-quick-") if opts.quick else str(REPO / "reports" / "bench")
    return opts


def machine(device: Any) -> dict[str, Any]:
    import torch

    from harness.execution.env import environment

    info = environment(device)
    cpu = next((line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")), "unknown")
    info.update(cpu=cpu, threads=torch.get_num_threads())
    if device.type == "cpu":
        info["device"] = f"cpu: {cpu}, {torch.get_num_threads()} threads"
    return info


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def run_speed(opts: argparse.Namespace, command: str) -> dict[str, Any]:
    import torch
    from transformers import TrainingArguments

    from harness.bench import flops, peak, report, rows, timing
    from harness.bench.variants import PRECISIONS
    from harness.execution.training import resolve_device

    device = resolve_device(opts.device)
    names, skipped = rows.available_rows(opts.rows.split(",") if opts.rows else list(rows.ROWS))
    for name, why in skipped.items():
        log.warning("skipping row %s: %s", name, why)
    variants = variant_list(opts)
    with tempfile.TemporaryDirectory() as tmp:  # nothing is written there; TrainingArguments wants a folder
        args = TrainingArguments(output_dir=tmp, max_grad_norm=0.0, report_to="none", use_cpu=device.type == "cpu")
        built = []
        for variant in variants:
            for name in names:
                key = rows.row_key(name, variant, len(variants) > 1)
                log.info("building row %s", key)
                built.append(rows.build_row(name, opts.model, device, args, variant=variant, key=key))
        batch = timing.make_batch(built[0].model, opts.batch, opts.seq, device)
        precisions = [p for p in PRECISIONS if any(v.precision == p for v in variants)]
        clock = timing.CLOCKS[opts.clock]
        peaks = peak.measure_peaks(built[0].model, opts.batch * opts.seq, precisions, device, clock)
        timings = timing.measure(built, batch, args, device, opts.warmup, opts.reps, opts.clock)
        freezer_row = next((r for r in built if r.row == "aflora"), None)
        per_step = None
        if freezer_row is not None:
            window = int(rows.compose_config(opts.model, "aflora").method.window)
            per_step = timing.bookkeeping_per_step(freezer_row, batch, args, device, window, opts.clock)
    for row in built:
        rows.check_unchanged(row)
    macs = {row.name: flops.linear_macs_per_token(row.model) for row in built}
    train_macs = {row.name: flops.training_macs_per_token(row.model) for row in built}
    records, freezer, targets = report.summarise(
        built, timings, macs, train_macs, peaks, per_step, opts.batch, opts.batch * opts.seq, judged=not opts.quick
    )
    settings = {k: getattr(opts, k) for k in ("batch", "seq", "warmup", "reps", "quick", "clock", "precision")}
    settings["variants"] = [v.label for v in variants]
    return {
        "model": opts.model,
        "device": str(device),
        "command": command,
        "settings": {**settings, "threads": torch.get_num_threads()},
        "machine": machine(device),
        "peaks": peaks,
        "rows": records,
        "skipped": skipped,
        "freezer": freezer,
        "targets": targets,
        "paper": report.PAPER,
    }


def variant_list(opts: argparse.Namespace) -> list[Any]:
    from harness.bench.variants import parse_variant

    try:
        return [parse_variant(v) for v in (opts.variants or opts.precision).split(",")]
    except ValueError as err:
        raise SystemExit(f"error: variants: {err}") from None


def run_flops(opts: argparse.Namespace, command: str) -> str:
    """Linear-layer multiply-adds per token and trainable parameters of every row, without timing:
    the paper's FLOPs comparison on any shapes (DeBERTaV3-base's build in seconds on a CPU)."""
    import torch
    from transformers import TrainingArguments

    from harness.bench import flops, rows
    from harness.execution.params import count_parameters

    names, _ = rows.available_rows(opts.rows.split(",") if opts.rows else list(rows.ROWS))
    macs, params = {}, {}
    with tempfile.TemporaryDirectory() as tmp:  # nothing is written there; TrainingArguments wants a folder
        args = TrainingArguments(output_dir=tmp, max_grad_norm=0.0, report_to="none", use_cpu=True)
        for name in names:
            row = rows.build_row(name, opts.model, torch.device("cpu"), args)
            macs[name] = flops.linear_macs_per_token(row.model)["total"]
            params[name] = count_parameters(row.model, row.heads)["trainable"]
    lines = [
        f"# Linear FLOPs per token: {opts.model}",
        "",
        f"Command: `{command}`",
        "",
        "| row | trainable (head excl.) | linear MACs/token | vs ELoRA | vs LoRA |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in names:
        vs = [f"{macs[name] / macs[ref]:.4f}" if ref in macs else "n/a" for ref in ("elora", "lora")]
        lines.append(f"| {name} | {params[name]:,} | {macs[name]:,} | {vs[0]} | {vs[1]} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    quiet_libraries()
    opts = parse_args(argv)
    command = " ".join(["python -m harness.bench", *argv])
    out = Path(opts.out)
    if opts.threads:
        import torch

        torch.set_num_threads(opts.threads)
    if opts.mode == "flops":
        text = run_flops(opts, command)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{opts.model}-flops.md").write_text(text)
    elif opts.mode == "eval":
        import json
        import os

        from harness.bench import evaluation

        glue_dir = opts.glue_dir or os.environ.get("GLUE_DIR")
        if not glue_dir or not (Path(glue_dir) / opts.task).is_dir():
            raise SystemExit(f"eval mode needs a local GLUE copy with {opts.task}/: set GLUE_DIR or glue_dir=")
        result = {**evaluation.run_eval_mode(opts, glue_dir), "command": command}
        out.mkdir(parents=True, exist_ok=True)
        stem = out / f"eval-{opts.model}-{opts.task}"
        text = evaluation.markdown(result)
        stem.with_suffix(".md").write_text(text)
        stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    elif opts.mode == "epoch":
        import json

        from harness.bench import epoch

        result = {**epoch.run_epoch_mode(opts), "command": command}
        out.mkdir(parents=True, exist_ok=True)
        stem = out / f"epoch-{opts.model}-{opts.task}"
        text = epoch.markdown(result)
        stem.with_suffix(".md").write_text(text)
        stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    else:
        from harness.bench import report

        result = run_speed(opts, command)
        variants = result["settings"]["variants"]
        stem = (
            f"{opts.model}-{opts.device}"
            + ("" if variants == ["fp32"] else "-" + "-".join(variants))
            + ("-quick" if opts.quick else "")
        )
        report.write(result, out, stem)
        text = report.markdown(result)
    print(text)
    log.info("wrote %s", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
