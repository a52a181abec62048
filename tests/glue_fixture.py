"""Tiny GLUE-shaped data sets in the hub's parquet layout (<dir>/<task>/<split>-00000-of-00001.parquet)."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from omegaconf import OmegaConf

from harness.core.paths import CONF_DIR, conf_file
from harness.report.paper import PAPER_TASKS

WORDS = "the a cat dog sat on mat ran fast slow big small red blue house tree river saw ate".split()


def _shape(task: str) -> tuple[list[str], int, list[str]]:
    cfg = OmegaConf.load(conf_file("task", task))
    return list(cfg.text_fields), cfg.num_labels, list(cfg.eval_splits)


# task -> (text columns, number of labels (1 = regression), evaluation splits), from conf/task/. The
# paper's tasks come first, in its order, then the others: write_glue draws a task's data with its
# position as the seed, so a new task leaves the others' data as it was.
_OTHERS = sorted(p.stem for p in (CONF_DIR / "task").glob("*.yaml") if p.stem not in PAPER_TASKS)
TASKS = {task: _shape(task) for task in [*PAPER_TASKS, *_OTHERS]}


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
