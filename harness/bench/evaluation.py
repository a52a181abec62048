"""Eval mode: evaluation throughput per evaluation batch size, and a run's fixed start-up cost.

``python -m harness.bench mode=eval task=mrpc eval_batches=32,64,128,256 variants=fp32,bf16+eager``

Evaluation. The task's validation split, tokenised as a run tokenises it, goes through the model in
its own order (as the Trainer evaluates: no shuffling, no grouping) in batches of each size, each
padded to its longest example (``DataCollatorWithPadding``), under ``torch.no_grad`` and the
variant's precision. Sizes and variants alternate round by round; the clock is the bench's. A larger
batch runs fewer, wider products but pads more tokens: the report gives both.

Start-up. In a fresh process: importing what ``run.py`` imports before training, loading the
backbone with its method, and loading + tokenising the task from the datasets cache (warm it first
with one run): the seconds a run pays before its first step, whatever its length.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from typing import Any

from harness.core.paths import REPO

_STARTUP = """
import json, sys, time
start = time.perf_counter(), time.process_time()
import harness.execution.experiment, harness.execution.lifecycle  # what run.py imports before it trains
imported = time.perf_counter(), time.process_time()
from harness.bench.evaluation import build_model, tokenised_validation
build_model(sys.argv[1], sys.argv[2], sys.argv[3], "fp32")
built = time.perf_counter(), time.process_time()
tokenised_validation(sys.argv[1], sys.argv[3], sys.argv[4], include_train=True)
done = time.perf_counter(), time.process_time()
phases = {"imports": (start, imported), "model": (imported, built), "data": (built, done)}
print(json.dumps({k: {"wall": b[0] - a[0], "cpu": b[1] - a[1]} for k, (a, b) in phases.items()}))
"""


def build_model(model_name: str, method: str, task_name: str, variant_label: str) -> Any:
    """The backbone with ``method`` built on it, as a run assembles it, for the variant's attention."""
    from harness.bench.rows import compose_config
    from harness.bench.variants import parse_variant
    from harness.execution.assembly import assemble
    from harness.inputs.tasks import TaskSpec

    cfg = compose_config(model_name, method, task_name)
    for key, value in parse_variant(variant_label).train_overrides.items():
        cfg.train[key] = value
    return assemble(cfg, TaskSpec.from_config(cfg.task), steps_per_epoch=100, total_steps=2000).model.eval()


def tokenised_validation(model_name: str, task_name: str, glue_dir: str, include_train: bool = False) -> Any:
    """The task's first validation split tokenised as a run does (and the training split, loaded alone)."""
    from harness.bench.rows import compose_config
    from harness.inputs.data import load_raw_splits, tokenize_splits
    from harness.inputs.models import load_tokenizer
    from harness.inputs.tasks import TaskSpec

    cfg = compose_config(model_name, "full", task_name)
    task = TaskSpec.from_config(cfg.task)
    split = next(iter(task.eval_splits))
    splits = ["train", split] if include_train else [split]
    raw = load_raw_splits(task, glue_dir, cfg.data.hub_name, splits)
    tokenizer = load_tokenizer(cfg.model)
    tokenised = tokenize_splits(raw, tokenizer, task, cfg.data.max_seq_length, cfg.data.pad_to_max_length)
    return tokenised[split], tokenizer


def evaluation_seconds(model: Any, batches: list[dict], precision: str, clock: Any) -> float:
    import torch

    from harness.bench.timing import autocast

    start = clock()
    with torch.no_grad(), autocast(torch.device("cpu"), precision):
        for batch in batches:
            model(**batch)
    return clock() - start


def run_eval_mode(opts: Any, glue_dir: str) -> dict[str, Any]:
    from transformers import DataCollatorWithPadding

    from harness.bench.timing import CLOCKS

    sizes = [int(s) for s in opts.eval_batches.split(",")]
    labels = (opts.variants or opts.precision).split(",")
    dataset, tokenizer = tokenised_validation(opts.model, opts.task, glue_dir)
    dataset = dataset.remove_columns([c for c in dataset.column_names if c not in ("input_ids", "attention_mask")])
    collate = DataCollatorWithPadding(tokenizer)
    examples = list(dataset)
    batched = {size: [collate(examples[i : i + size]) for i in range(0, len(examples), size)] for size in sizes}
    models = {label: build_model(opts.model, opts.method, opts.task, label) for label in labels}
    clock = CLOCKS[opts.clock]
    seconds: dict[tuple[str, int], list[float]] = {(v, s): [] for v in labels for s in sizes}
    for rep in range(opts.reps + opts.warmup):
        for label in labels:
            for size in sizes:
                spent = evaluation_seconds(models[label], batched[size], label.split("+")[0], clock)
                if rep >= opts.warmup:
                    seconds[(label, size)].append(spent)
    real_tokens = sum(len(e["input_ids"]) for e in examples)
    rows = [
        {
            "variant": label,
            "eval_batch": size,
            "seconds": seconds[(label, size)],
            "samples_per_second": len(examples) / statistics.median(seconds[(label, size)]),
            "padded_tokens": sum(b["input_ids"].numel() for b in batched[size]),
            "real_tokens": real_tokens,
        }
        for label in labels
        for size in sizes
    ]
    return {
        "task": opts.task,
        "model": opts.model,
        "method": opts.method,
        "examples": len(examples),
        "clock": opts.clock,
        "rows": rows,
        "startup": startup_seconds(opts, glue_dir),
    }


def startup_seconds(opts: Any, glue_dir: str) -> dict[str, dict[str, float]]:
    args = [sys.executable, "-c", _STARTUP, opts.model, opts.method, opts.task, glue_dir]
    done = subprocess.run(args, cwd=REPO, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def markdown(report: dict[str, Any]) -> str:
    first = {}
    lines = [
        f"# Evaluation batch size and start-up: {report['model']} on {report['task']} ({report['method']})",
        "",
        f"Command: `{report['command']}`",
        "",
        f"The validation split ({report['examples']} examples) in its order, each batch padded to its longest "
        f"example, no gradients; {report['clock']} clock, median over rounds, sizes and variants interleaved.",
        "",
        "| variant | eval batch | samples/s | vs the variant's first size | padded tokens / real tokens |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        base = first.setdefault(r["variant"], r["samples_per_second"])
        lines.append(
            f"| {r['variant']} | {r['eval_batch']} | {r['samples_per_second']:.1f} | "
            f"{r['samples_per_second'] / base:.3f} | {r['padded_tokens'] / r['real_tokens']:.3f} |"
        )
    s = report["startup"]
    lines += [
        "",
        "Start-up of a run, in a fresh process (wall s / CPU s): "
        + "; ".join(f"{phase} {t['wall']:.1f} / {t['cpu']:.1f}" for phase, t in s.items())
        + " (data: load + tokenise the training and validation splits, from the datasets cache when warm).",
    ]
    return "\n".join(lines) + "\n"
