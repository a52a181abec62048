"""The README's table for run_glue users points at fields that a real result.json has."""

from __future__ import annotations

import json
import re

from harness.core.paths import REPO

TOP_LEVEL = ("metrics.", "runtime.", "weights.", "config.", "params.")


def table_rows() -> list[tuple[str, str]]:
    text = (REPO / "README.md").read_text()
    block = text.split("<!-- run_glue fields -->", 1)[1].split("<!-- /run_glue fields -->", 1)[0]
    rows = [line.split("|")[1:3] for line in block.strip().splitlines()[2:]]
    return [(left.strip(), right.strip()) for left, right in rows]


def resolve(data, dotted: str):
    for part in re.findall(r"[^.\[\]]+", dotted):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


def test_every_result_json_path_in_the_run_glue_table_exists():
    result = json.loads((REPO / "runs/minilm/rte/aflora/seed1/result.json").read_text())
    metric = result["metrics"]["selection_metric"]
    rows = table_rows()
    named = {left.split("`")[1] for left, _ in rows}
    # The files run_glue users look for, and their key fields.
    assert {"eval_<metric>", "eval_loss", "train_loss", "train_runtime", "global_step", "best_metric"} <= named
    checked = 0
    for _, right in rows:
        for path in re.findall(r"`([^`]+)`", right):
            if not path.startswith(TOP_LEVEL):
                continue
            concrete = path.replace("<metric>", metric).replace("[i]", "[0]")
            assert resolve(result, concrete) is not None, path
            checked += 1
    assert checked >= 15
