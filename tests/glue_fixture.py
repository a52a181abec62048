"""Tiny GLUE-shaped data sets in the hub's parquet layout (<dir>/<task>/<split>-00000-of-00001.parquet)."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

WORDS = "the a cat dog sat on mat ran fast slow big small red blue house tree river saw ate".split()

# task -> (text columns, number of labels (1 = regression), evaluation splits)
TASKS = {
    "cola": (["sentence"], 2, ["validation"]),
    "sst2": (["sentence"], 2, ["validation"]),
    "mrpc": (["sentence1", "sentence2"], 2, ["validation"]),
    "qnli": (["question", "sentence"], 2, ["validation"]),
    "stsb": (["sentence1", "sentence2"], 1, ["validation"]),
    "rte": (["sentence1", "sentence2"], 2, ["validation"]),
    "mnli": (["premise", "hypothesis"], 3, ["validation_matched", "validation_mismatched"]),
    "qqp": (["question1", "question2"], 2, ["validation"]),
    "wnli": (["sentence1", "sentence2"], 2, ["validation"]),
}


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))


def split_table(task: str, n: int, seed: int = 0) -> pa.Table:
    columns, num_labels, _ = TASKS[task]
    rng = random.Random(seed)
    data = {c: [_sentence(rng) for _ in range(n)] for c in columns}
    if num_labels == 1:
        data["label"] = [round(rng.uniform(0, 5), 2) for _ in range(n)]
    else:
        data["label"] = [rng.randrange(num_labels) for _ in range(n)]
    data["idx"] = list(range(n))
    return pa.table(data)


def write_glue(root: Path, tasks: list[str] | None = None, n_train: int = 48, n_eval: int = 16) -> Path:
    for i, task in enumerate(tasks or TASKS):
        folder = root / task
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(split_table(task, n_train, seed=i), folder / "train-00000-of-00001.parquet")
        for j, split in enumerate(TASKS[task][2]):
            pq.write_table(split_table(task, n_eval, seed=100 + 10 * i + j), folder / f"{split}-00000-of-00001.parquet")
    return root
