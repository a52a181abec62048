"""The HF Trainer set up with the reference protocol: epochs, eval + checkpoint every epoch."""

from __future__ import annotations

import math
import os
from typing import Any

import torch
from datasets import Dataset
from transformers import (
    DataCollatorWithPadding,
    PreTrainedTokenizerBase,
    SchedulerType,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from harness.epoch_predictions import PredictionKeepingTrainer
from harness.errors import ConfigError
from harness.metrics import compute_metrics_fn
from harness.optim import OPTIMIZERS
from harness.quiet import progress_bars
from harness.tasks import TaskSpec
from harness.tracking import ScalarLoggingTrainer, report_targets


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"train.device {name!r} is not one of ['auto', 'cpu', 'cuda']")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device=cuda but no CUDA device is visible")
    return torch.device(name)


def set_threads(threads: int | None) -> None:
    """Torch's intra-op threads for this process; null keeps torch's default of one per core.

    Several trainings on one machine each start one thread per core by default and slow each other
    down: give each of N concurrent jobs cores / N threads (train.threads).
    """
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"train.threads = {threads!r} must be a positive integer or null")
    torch.set_num_threads(threads)


def batch_layout(train_cfg: Any, processes: int) -> tuple[int, int]:
    """(per-device batch, accumulation steps) that keep the recipe's effective batch size."""
    batch = train_cfg.batch_size
    per_device = train_cfg.per_device_batch_size or max(batch // processes, 1)
    if batch <= 0 or per_device <= 0 or batch % (per_device * processes):
        raise ConfigError(
            f"train.batch_size {batch} is not a multiple of per-device batch {per_device} x {processes} process(es)"
        )
    return per_device, batch // (per_device * processes)


def optimizer_steps(n_train: int, train_cfg: Any, processes: int) -> tuple[int, int]:
    """(steps per epoch, total steps) exactly as the Trainer will count them."""
    per_device, accumulation = batch_layout(train_cfg, processes)
    batches = math.ceil(n_train / (per_device * processes))
    per_epoch = max(math.ceil(batches / accumulation), 1)
    if train_cfg.max_steps and train_cfg.max_steps > 0:
        return per_epoch, train_cfg.max_steps
    return per_epoch, per_epoch * train_cfg.epochs


_INTEGERS = ("epochs", "batch_size", "eval_batch_size", "logging_steps", "max_steps")
_OPTIONAL_INTEGERS = ("per_device_batch_size", "max_train_samples", "max_eval_samples")
_NUMBERS = ("lr", "head_lr", "weight_decay", "head_weight_decay", "warmup_ratio", "max_grad_norm")
_BOOLEANS = ("group_by_length", "keep_checkpoints", "keep_predictions")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_types(train_cfg: Any) -> None:
    kinds = [
        *((k, _is_int, "an integer") for k in _INTEGERS),
        *((k, lambda v: v is None or _is_int(v), "an integer or null") for k in _OPTIONAL_INTEGERS),
        *((k, lambda v: _is_int(v) or isinstance(v, float), "a number") for k in _NUMBERS),
        *((k, lambda v: isinstance(v, bool), "true or false") for k in _BOOLEANS),
    ]
    for key, ok, kind in kinds:
        if key in train_cfg and not ok(train_cfg[key]):
            raise ConfigError(f"train.{key} = {train_cfg[key]!r} must be {kind}")


def validate_train_config(train_cfg: Any) -> None:
    _check_types(train_cfg)
    checks = {
        "epochs": train_cfg.epochs > 0,
        "lr": train_cfg.lr > 0,
        "head_lr": train_cfg.head_lr > 0,
        "weight_decay": train_cfg.weight_decay >= 0,
        "head_weight_decay": train_cfg.head_weight_decay >= 0,
        "warmup_ratio": 0 <= train_cfg.warmup_ratio < 1,
        "max_grad_norm": train_cfg.max_grad_norm >= 0,
        "eval_batch_size": train_cfg.eval_batch_size > 0,
        "logging_steps": train_cfg.logging_steps > 0,
    }
    for key, ok in checks.items():
        if not ok:
            raise ConfigError(f"train.{key} = {train_cfg[key]} is out of range")
    if train_cfg.precision not in ("fp32", "bf16"):
        raise ConfigError(
            f"train.precision {train_cfg.precision!r} is not one of ['fp32', 'bf16'] "
            "(fp16 needs loss scaling, which the harness's own gradient clipping does not undo)"
        )
    schedulers = [t.value for t in SchedulerType]
    if train_cfg.lr_scheduler not in schedulers:
        raise ConfigError(f"train.lr_scheduler {train_cfg.lr_scheduler!r} is not one of {schedulers}")
    if train_cfg.optimizer not in OPTIMIZERS:
        raise ConfigError(f"train.optimizer {train_cfg.optimizer!r} is not one of {sorted(OPTIMIZERS)}")


def training_arguments(train_cfg: Any, run_dir: str, seed: int, device: torch.device) -> TrainingArguments:
    per_device, accumulation = batch_layout(train_cfg, world_size())
    return TrainingArguments(
        output_dir=run_dir,
        num_train_epochs=train_cfg.epochs,
        max_steps=train_cfg.max_steps,
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=accumulation,
        per_device_eval_batch_size=train_cfg.eval_batch_size,
        lr_scheduler_type=train_cfg.lr_scheduler,
        warmup_steps=train_cfg.warmup_ratio,  # a float below 1 is a ratio in transformers 5
        max_grad_norm=0.0,  # clipped by ClipAndCheckGradients after the method callbacks saw raw grads
        eval_strategy="epoch",
        save_strategy="epoch",  # equal to eval_strategy: exact resume (design.md)
        save_total_limit=None,  # MarkCompleteCheckpoints drops old ones once the new one is whole
        logging_strategy="steps",
        logging_steps=train_cfg.logging_steps,
        logging_nan_inf_filter=False,  # a NaN loss must show, not be averaged away
        train_sampling_strategy="group_by_length" if train_cfg.group_by_length else "random",
        bf16=train_cfg.precision == "bf16",
        use_cpu=device.type == "cpu",
        seed=seed,
        report_to=report_targets(train_cfg.report_to, run_dir),  # harness/tracking.py
        dataloader_num_workers=0,
        save_only_model=False,
        disable_tqdm=not progress_bars(),  # in a log file: the logged numbers as plain lines
    )


def build_trainer(
    model: torch.nn.Module,
    args: TrainingArguments,
    train_set: Dataset,
    eval_sets: dict[str, Dataset],
    tokenizer: PreTrainedTokenizerBase,
    task: TaskSpec,
    optimizer: torch.optim.Optimizer,
    callbacks: list[TrainerCallback],
    keep_predictions: bool = False,
) -> Trainer:
    # keep_predictions: each epoch's predictions go to <run_dir>/epoch_predictions/ (harness/epoch_predictions.py)
    keeping = {"task": task} if keep_predictions else {}
    trainer = (PredictionKeepingTrainer if keep_predictions else ScalarLoggingTrainer)(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_sets,  # a dict: metrics arrive as eval_<split>_<metric>
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=compute_metrics_fn(task),
        optimizers=(optimizer, None),  # the Trainer builds the linear warm-up schedule
        callbacks=callbacks,
        **keeping,
    )
    # The classifiers' forward takes **kwargs, so the Trainer assumes their loss is normalised by
    # num_items_in_batch; it is a per-batch mean. Left True, the gradient comes out multiplied by
    # accumulation steps x processes (transformers#47688): the effective batch would not be kept.
    trainer.model_accepts_loss_kwargs = False
    return trainer
