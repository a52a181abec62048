"""Reload a finished run's best weights, check them against result.json, predict GLUE's test split.

    python -m harness.predict runs/minilm/rte/aflora/seed1            # -> <run_dir>/predictions/RTE.tsv
    python -m harness.predict runs/minilm/mnli/lora/seed1 --out sub/  # MNLI-m.tsv, MNLI-mm.tsv, AX.tsv
    python -m harness.predict runs/minilm/rte/aflora/seed1 --threads 2   # torch threads (default: one per core)

The model is rebuilt as the run built it (its resolved config is in result.json): the backbone
from ``model`` (after ``set_seed(seed)``, so a random-weight backbone comes out the same), then the
adapter from ``<run_dir>/best/``, by the method's ``load_weights`` if it registered one (SoRA: its
gates; ``harness.execution.methods.method_weights_loader``), else by peft, or the probe's classifier; a fully
fine-tuned model loads from there on its own (harness/storage/weights_format.py). Before predicting, the
validation split(s) are evaluated again, with the run's batch size and sample limit, and each metric
is compared with the best epoch's in result.json.
"""

from __future__ import annotations

import argparse
import logging
import re
import shlex
import sys
from dataclasses import replace
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from peft import PeftModel
from transformers import (
    AutoModelForSequenceClassification,
    DataCollatorWithPadding,
    PreTrainedTokenizerBase,
    Trainer,
    TrainingArguments,
    set_seed,
)

from harness.core.errors import HarnessError, print_user_error
from harness.execution.methods import WeightsLoader, method_weights_loader
from harness.execution.quiet import quiet_libraries
from harness.execution.training import evaluation_arguments, resolve_device, set_threads
from harness.inputs.data import load_raw_splits, reported_set, take_examples, tokenize_splits
from harness.inputs.metrics import compute_metrics_fn, to_predictions
from harness.inputs.models import load_model, load_tokenizer
from harness.inputs.tasks import TaskSpec, task_spec
from harness.storage.best_weights import BEST_DIR
from harness.storage.result_schema import COMPLETED, RunResult
from harness.storage.results import RESULT_FILE, load_result
from harness.storage.weights_format import PEFT_ADAPTER, WHOLE_MODEL, format_of, load_head
from harness.submission import PREDICTIONS_DIR, TEST_FILES, write_tsv

log = logging.getLogger(__name__)


def load_run(run_dir: Path) -> tuple[DictConfig, RunResult]:
    """The run's resolved config and result; a completed run with saved weights, or a HarnessError."""
    path = run_dir / RESULT_FILE
    if not path.exists():
        raise HarnessError(f"{run_dir}: no result.json (not a run directory, or the run never started)")
    result = load_result(path)
    if result.status != COMPLETED:
        raise HarnessError(f"{run_dir}: the run has not completed (status {result.status!r}: {result.error})")
    if not (run_dir / BEST_DIR).is_dir():
        raise HarnessError(missing_weights(run_dir, result))
    return OmegaConf.create(result.config), result


RETRAINED = Path("outputs/retrained")  # where a run whose weights are missing is trained again


def missing_weights(run_dir: Path, result: RunResult) -> str:
    """Why ``<run_dir>/best/`` is absent, and how to get weights: a run whose result.json records
    them lost them (git keeps only result.json); training its command again into RETRAINED
    recreates them without touching the run directory."""
    best = run_dir / BEST_DIR
    if result.weights is None:
        return f"{best}: no saved weights (result.json records none: the run had train.save_best=false or predates it)"
    overrides = [f"task={result.task}", f"model={result.model}", f"method={result.method}", f"seed={result.seed}"]
    overrides += result.variant.split(",") if result.variant else []
    hashed = [o for o in overrides if re.fullmatch(r"(config-[0-9a-f]{12}|.*=h[0-9a-f]{8})", o)]
    retrained = RETRAINED / result.model / result.task / result.method / f"seed{result.seed}" / (result.variant or "")
    command = shlex.join(["python", "run.py", *overrides, f"runs_dir={RETRAINED}"])
    where = f" (with the overrides behind {', '.join(hashed)})" if hashed else ""
    return (
        f"{best}: the weights result.json records ({result.weights.format}, epoch {result.weights.epoch}) are not "
        f"here: git keeps only result.json. Train the run again to recreate them: {command}{where} with the same "
        f"GLUE_DIR, then: make predict RUN={retrained}"
    )


def load_adapter(base: torch.nn.Module, folder: Path, load_weights: WeightsLoader | None = None) -> torch.nn.Module:
    """A saved PEFT adapter on ``base``, trainable as in training, so the forward is the same: AFLoRA
    folds only adapters whose projections are frozen (a different rounding from the layer-by-layer
    path), and peft's AdaLoRA adds its regulariser to the evaluation loss only through a trainable
    adapter. ``load_weights``: the method's own loader, for an adapter peft alone would not rebuild
    whole (a SoRA adapter is a LoRA one plus its gates, which peft's LoRA would drop)."""
    if load_weights is not None:
        return load_weights(base, folder)
    return PeftModel.from_pretrained(base, folder, is_trainable=True)


def load_saved_model(cfg: DictConfig, task: TaskSpec, folder: Path) -> torch.nn.Module:
    form = format_of(folder)
    if form == WHOLE_MODEL:
        return AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.float32).eval()
    load_weights = method_weights_loader(cfg.method) if form == PEFT_ADAPTER else None  # registers its PEFT type
    set_seed(cfg.seed)  # as run_experiment does before it builds the backbone
    backbone = load_model(cfg.model, task, cfg.train.get("attn_implementation"))  # the kernel the run trained with
    model = load_adapter(backbone, folder, load_weights) if form == PEFT_ADAPTER else load_head(backbone, folder)
    return model.eval()


def inference_trainer(
    model: torch.nn.Module, cfg: DictConfig, task: TaskSpec, tokenizer: PreTrainedTokenizerBase, out_dir: Path
) -> Trainer:
    """A Trainer that evaluates and predicts exactly as the training run's did (batch size, precision, collator)."""
    device = resolve_device(cfg.train.device)
    # A bar on a terminal; in a log, the lines predict_test writes.
    args = TrainingArguments(output_dir=str(out_dir), report_to="none", **evaluation_arguments(cfg.train, device))
    return Trainer(
        model=model,
        args=args,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=compute_metrics_fn(task),
    )


def evaluate_validation(trainer: Trainer, cfg: DictConfig, task: TaskSpec, data_dir: str | None) -> dict[str, float]:
    """The task's metrics on its validation split(s), keyed as result.json keys them (``accuracy_mm``);
    under data.protocol=heldout on the part of each split the run reported (harness/inputs/data.py)."""
    splits = list(task.eval_splits)
    raw = load_raw_splits(task, data_dir, cfg.data.hub_name, splits)
    tokenized = tokenize_splits(
        raw, trainer.processing_class, task, cfg.data.max_seq_length, cfg.data.pad_to_max_length
    )
    metrics = {}
    for split, suffix in task.eval_splits.items():
        dataset = take_examples(reported_set(tokenized[split], task), cfg.train.max_eval_samples)
        log.info("evaluating %s's %s: %d examples", task.name, split, len(dataset))
        out = trainer.evaluate(dataset, metric_key_prefix=f"eval_{split}")
        metrics.update({m + suffix: out[f"eval_{split}_{m}"] for m in task.metrics})
    return metrics


def predict_test(trainer: Trainer, cfg: DictConfig, task: TaskSpec, data_dir: str | None, out_dir: Path) -> list[Path]:
    """Write the GLUE server's file(s) for ``task`` into ``out_dir``; return their paths."""
    written = []
    for test in TEST_FILES[task.name]:
        data_task = replace(task, name=test.data_task)  # AX has MNLI's columns
        raw = load_raw_splits(data_task, data_dir, cfg.data.hub_name, [test.split])[test.split]
        indices = raw["idx"] if "idx" in raw.column_names else list(range(len(raw)))
        tokenized = tokenize_splits(
            {test.split: raw}, trainer.processing_class, task, cfg.data.max_seq_length, cfg.data.pad_to_max_length
        )[test.split].remove_columns("labels")  # GLUE's test labels are -1 placeholders
        log.info("predicting %s: %d examples", test.file, len(tokenized))
        predictions = to_predictions(task, trainer.predict(tokenized).predictions)
        path = out_dir / test.file
        write_tsv(path, task.name, indices, predictions)
        log.info("wrote %s (%d rows)", path, len(indices))
        written.append(path)
    return written


def compare(reproduced: dict[str, float], reported: dict[str, float | None]) -> list[str]:
    """Lines saying, per metric, whether the reloaded weights gave result.json's number."""
    lines = []
    for key, value in reproduced.items():
        same = value == reported.get(key)
        lines.append(f"validation {key}: {value!r} (result.json: {reported.get(key)!r}){'' if same else '  DIFFERS'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.predict",
        description="Reload a completed run's best weights, re-check its validation metric, and write the GLUE "
        "server's test-set file(s) (header index<TAB>prediction).",
    )
    parser.add_argument("run_dir", type=Path, help="runs/<model>/<task>/<method>/seed<seed>")
    parser.add_argument("--out", type=Path, default=None, help=f"default: <run_dir>/{PREDICTIONS_DIR}/")
    parser.add_argument("--data-dir", default=None, help="a local GLUE copy (default: the run's data.dir)")
    parser.add_argument("--no-check", action="store_true", help="skip re-evaluating the validation split(s)")
    parser.add_argument("--device", default=None, help="auto, cpu or cuda (default: the run's train.device)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (default: torch's, one per core)"
    )
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    quiet_libraries()

    try:
        set_threads(args.threads)
        cfg, result = load_run(args.run_dir)
        task = task_spec(cfg)
        if task.name not in TEST_FILES:
            raise HarnessError(f"task {task.name!r} has no GLUE test file (known: {sorted(TEST_FILES)})")
        data_dir = args.data_dir or cfg.data.dir
        if args.device:
            cfg.train.device = args.device
        model = load_saved_model(cfg, task, args.run_dir / BEST_DIR)
        out_dir = args.out or args.run_dir / PREDICTIONS_DIR
        trainer = inference_trainer(model, cfg, task, load_tokenizer(cfg.model), out_dir)
        if not args.no_check:
            for line in compare(evaluate_validation(trainer, cfg, task, data_dir), result.metrics.best.numbers):
                log.info("%s", line)
        predict_test(trainer, cfg, task, data_dir, out_dir)
    except HarnessError as err:
        return print_user_error(err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
