"""How many of a task's examples are longer than a maximum length, with a model's own tokenizer.

    python -m harness.token_lengths --model minilm --tasks rte,mrpc,stsb,cola [--limits 128,256]

A protocol chooses ``data.max_seq_length`` from these shares (conf/protocol/minilm-paper/README.md):
the count is of untruncated tokens, special tokens included, over the task's training split and
evaluation splits as the run loads them (GLUE_DIR or the hub).
"""

from __future__ import annotations

import argparse
import os
import sys

from harness.config.compose import run_config
from harness.inputs.data import load_raw_splits, required_splits
from harness.inputs.models import load_tokenizer
from harness.inputs.tasks import TaskSpec


def token_counts(tokenizer, task: TaskSpec, texts: dict[str, list[str]]) -> list[int]:
    """Untruncated token count (special tokens included) of each example."""
    encoded = tokenizer(*(texts[field] for field in task.text_fields), truncation=False)
    return [len(ids) for ids in encoded["input_ids"]]


def share_over(counts: list[int], limit: int) -> float:
    return sum(n > limit for n in counts) / len(counts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="minilm", help="a conf/model/ name (default minilm)")
    parser.add_argument("--tasks", required=True, help="comma-separated conf/task/ names")
    parser.add_argument("--limits", default="128,256", help="comma-separated lengths (default 128,256)")
    args = parser.parse_args(argv)
    limits = [int(v) for v in args.limits.split(",")]
    for name in args.tasks.split(","):
        cfg = run_config([f"model={args.model}", f"task={name}"])
        task = TaskSpec.from_config(cfg.task)
        tokenizer = load_tokenizer(cfg.model)
        raw = load_raw_splits(task, cfg.data.dir or os.environ.get("GLUE_DIR"), cfg.data.hub_name)
        for split in required_splits(task):
            counts = token_counts(tokenizer, task, raw[split][:])
            shares = ", ".join(f"{100 * share_over(counts, n):.2f} % over {n}" for n in limits)
            print(f"{name} {split}: {len(counts)} examples, longest {max(counts)}; {shares}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
