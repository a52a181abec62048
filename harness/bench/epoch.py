"""Epoch mode: the harness's data pipeline against the reference code's, on real GLUE data.

Two ``run.py`` runs of one epoch, same task, model, method and seed, both truncating at 256 tokens:
- ``padded``: every example padded to 256 tokens, as the reference code does;
- ``dynamic``: each batch padded to its longest example (the harness default), optionally with
  ``group_by_length`` batches (similar lengths together: less padding still).
It reads ``runtime.seconds_per_epoch`` (training only, evaluation excluded) and the validation
metric from the two ``result.json`` files. Target: padded / dynamic >= 2.

Data caching: a second run of the same task must not tokenise again (``harness.inputs.data`` caches the
tokenised splits under a datasets fingerprint). Measured as the time to load + tokenise the task
in two fresh processes sharing an empty datasets cache: cold, then warm (``cache_timings=false``
skips it).
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from harness.core.paths import REPO, RUN_PY
from harness.storage.result_schema import COMPLETED
from harness.storage.results import RESULT_FILE, load_result

log = logging.getLogger(__name__)

MAX_LENGTH = 256  # the reference code's max_seq_length (docs/method.md, "Training recipe")
SPEEDUP_TARGET = 2.0

_TOKENISE = """
import json, sys
from harness.bench.epoch import tokenise_seconds
print(json.dumps(tokenise_seconds(*sys.argv[1:4], int(sys.argv[4]))))
"""


def run_overrides(opts: Any, variant: str, runs_dir: Path) -> list[str]:
    """The ``run.py`` overrides of one variant (``padded`` or ``dynamic``)."""
    padded = variant == "padded"
    samples = opts.train_samples if opts.train_samples else "null"
    return [
        f"task={opts.task}",
        f"model={opts.model}",
        f"method={opts.method}",
        "seed=1",
        "force=true",
        f"runs_dir={runs_dir}",
        "train.epochs=1",
        f"train.max_train_samples={samples}",
        f"train.device={opts.device}",
        f"data.max_seq_length={MAX_LENGTH}",
        f"data.pad_to_max_length={str(padded).lower()}",
        f"train.group_by_length={str(opts.group_by_length and not padded).lower()}",
    ]


def _env(opts: Any, glue_dir: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, "GLUE_DIR": glue_dir, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **extra}
    if opts.threads:  # torch takes its intra-op thread count from here at start-up
        env["OMP_NUM_THREADS"] = str(opts.threads)
    return env


def run_variant(opts: Any, variant: str, root: Path, glue_dir: str) -> dict[str, Any]:
    runs_dir = root / variant
    cmd = [sys.executable, str(RUN_PY), *run_overrides(opts, variant, runs_dir)]
    log.info("epoch mode, %s: %s", variant, " ".join(cmd[1:]))
    subprocess.run(cmd, cwd=REPO, env=_env(opts, glue_dir), check=True)
    # the overrides name a folder below seed1/ (harness/storage/identity.py); this runs_dir holds one run
    (path,) = (runs_dir / opts.model / opts.task / opts.method / "seed1").rglob(RESULT_FILE)
    result = load_result(path)
    if result.status != COMPLETED:
        raise RuntimeError(f"epoch mode, {variant}: run failed: {result.error}")
    metric = result.metrics.selection_metric
    runtime = result.runtime
    return {
        "overrides": run_overrides(opts, variant, runs_dir),
        "seconds_per_epoch": runtime.seconds_per_epoch,
        "train_samples_per_second": runtime.train_samples_per_second,
        "steps": runtime.steps,
        "train_examples": runtime.train_examples,
        "metric": metric,
        "value": result.metrics.best.numbers[metric],
    }


def tokenise_seconds(task_name: str, model_name: str, glue_dir: str, max_length: int) -> dict[str, Any]:
    """Seconds to load the raw splits and to tokenise them, as ``harness.execution.experiment`` does, and the
    number of examples of each split (the metrics' noise depends on the evaluation split's size)."""
    import time

    from harness.bench.rows import compose_config
    from harness.inputs.data import load_raw_splits, tokenize_splits
    from harness.inputs.models import load_tokenizer
    from harness.inputs.tasks import TaskSpec

    cfg = compose_config(model_name, "full", task_name)
    task = TaskSpec.from_config(cfg.task)
    tokenizer = load_tokenizer(cfg.model)
    start = time.perf_counter()
    raw = load_raw_splits(task, glue_dir)
    loaded = time.perf_counter()
    tokenize_splits(raw, tokenizer, task, max_length, pad_to_max_length=False)
    seconds = time.perf_counter() - loaded
    return {"load": loaded - start, "tokenise": seconds, "examples": {s: ds.num_rows for s, ds in raw.items()}}


def cache_timings(opts: Any, root: Path, glue_dir: str) -> dict[str, dict[str, Any]]:
    """Load + tokenise in two fresh processes over one empty datasets cache: cold, then warm."""
    env = _env(opts, glue_dir, HF_DATASETS_CACHE=str(root / "hf-datasets-cache"))
    args = [sys.executable, "-c", _TOKENISE, opts.task, opts.model, glue_dir, str(MAX_LENGTH)]
    out = {}
    for call in ("first", "second"):
        done = subprocess.run(args, cwd=REPO, env=env, check=True, capture_output=True, text=True)
        out[call] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def run_epoch_mode(opts: Any) -> dict[str, Any]:
    glue_dir = opts.glue_dir or os.environ.get("GLUE_DIR")
    if not glue_dir or not (Path(glue_dir) / opts.task).is_dir():
        raise SystemExit(f"epoch mode needs a local GLUE copy with {opts.task}/: set GLUE_DIR or glue_dir=")
    root = Path(opts.runs_dir) if opts.runs_dir else Path(tempfile.mkdtemp(prefix="bench-epoch-"))
    runs = {variant: run_variant(opts, variant, root, glue_dir) for variant in ("dynamic", "padded")}
    speedup = runs["padded"]["seconds_per_epoch"] / runs["dynamic"]["seconds_per_epoch"]
    return {
        "task": opts.task,
        "model": opts.model,
        "method": opts.method,
        "device": opts.device,
        "threads": opts.threads,
        "runs_dir": str(root),
        "runs": runs,
        "speedup": speedup,
        "target": {"limit": SPEEDUP_TARGET, "pass": speedup >= SPEEDUP_TARGET},
        "tokenisation": cache_timings(opts, root, glue_dir) if opts.cache_timings else None,
    }


def markdown(report: dict[str, Any]) -> str:
    runs, tok = report["runs"], report["tokenisation"] or {}
    verdict = "PASS" if report["target"]["pass"] else "FAIL"
    lines = [
        f"# Epoch throughput: {report['model']} on {report['task']} ({report['method']}, {report['device']})",
        "",
        f"Command: `{report['command']}`",
        "",
        f"One epoch each, truncation at {MAX_LENGTH} tokens, {report['threads'] or 'default'} intra-op thread(s) "
        "(OMP_NUM_THREADS); seconds per epoch are wall time and exclude evaluation.",
        "",
        "| variant | overrides | examples | steps | seconds/epoch | samples/s | best "
        + runs["dynamic"]["metric"]
        + " |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in runs.items():
        shown = " ".join(o for o in r["overrides"] if o.startswith(("data.", "train.group")))
        lines.append(
            f"| {name} | `{shown}` | {r['train_examples']} | {r['steps']} | {r['seconds_per_epoch']:.1f} | "
            f"{r['train_samples_per_second']:.1f} | {r['value']:.4f} |"
        )
    lines += [
        "",
        f"- {verdict}: padded / dynamic seconds per epoch = {report['speedup']:.2f} "
        f"(target >= {report['target']['limit']})",
        *metric_noise(runs, tok.get("first", {}).get("examples", {})),
    ]
    if tok:
        first, second = (tok[call]["load"] + tok[call]["tokenise"] for call in ("first", "second"))
        lines.append(
            f"- Data cache: load + tokenise in a fresh process, first {first:.2f} s (tokenise "
            f"{tok['first']['tokenise']:.2f} s), second {second:.2f} s (tokenise {tok['second']['tokenise']:.2f} s: "
            "read from the cache)."
        )
    return "\n".join(lines) + "\n"


def metric_noise(runs: dict[str, Any], examples: dict[str, int]) -> list[str]:
    """The two runs' metric difference beside the binomial standard error of an accuracy on the
    evaluation split: a difference within about two standard errors is noise."""
    dynamic, padded = runs["dynamic"], runs["padded"]
    difference = dynamic["value"] - padded["value"]
    line = f"- Validation {dynamic['metric']}: dynamic - padded = {difference:+.4f}"
    eval_split = next((s for s in examples if s != "train"), None)
    if dynamic["metric"] != "accuracy" or eval_split is None:
        return [line + "."]
    p, n = (dynamic["value"] + padded["value"]) / 2, examples[eval_split]
    error = math.sqrt(2 * p * (1 - p) / n)  # of the difference of two accuracies on n examples each
    return [line + f"; one standard error of that difference on {n} {eval_split} examples is {error:.4f}."]
