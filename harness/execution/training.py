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
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from harness.core.errors import ConfigError
from harness.execution.prediction_keeping import PredictionKeepingTrainer
from harness.execution.quiet import progress_bars
from harness.execution.tracking import ScalarLoggingTrainer, report_targets
from harness.inputs.metrics import compute_metrics_fn
from harness.inputs.tasks import TaskSpec


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
    if threads is not None:  # a count in range: harness/config/schema.py
        torch.set_num_threads(threads)


def batch_layout(train_cfg: Any, processes: int) -> tuple[int, int]:
    """(per-device batch, accumulation steps) that keep the recipe's effective batch size (both
    sizes are positive counts: harness/config/schema.py)."""
    batch = train_cfg.batch_size
    per_device = train_cfg.per_device_batch_size
    if per_device is None:
        per_device = max(batch // processes, 1)
    if batch % (per_device * processes):
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


def evaluation_arguments(train_cfg: Any, device: torch.device) -> dict[str, Any]:
    """The TrainingArguments a run's evaluation depends on, shared by training and by
    ``harness.predict``, so that a saved run predicts exactly as it evaluated while training."""
    return {
        "per_device_eval_batch_size": train_cfg.eval_batch_size,
        "bf16": train_cfg.precision == "bf16",
        "use_cpu": device.type == "cpu",
        "dataloader_num_workers": 0,
        "disable_tqdm": not progress_bars(),  # in a log file: the logged numbers as plain lines
    }


def training_arguments(train_cfg: Any, run_dir: str, seed: int, device: torch.device) -> TrainingArguments:
    per_device, accumulation = batch_layout(train_cfg, world_size())
    return TrainingArguments(
        output_dir=run_dir,
        num_train_epochs=train_cfg.epochs,
        max_steps=train_cfg.max_steps,
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=accumulation,
        lr_scheduler_type=train_cfg.lr_scheduler,
        warmup_steps=train_cfg.warmup_ratio,  # a float below 1 is a ratio in transformers 5
        max_grad_norm=0.0,  # clipped by ClipAndCheckGradients after the method callbacks saw raw grads
        eval_strategy="epoch",
        save_strategy="epoch",  # as eval_strategy: a checkpoint after every evaluation, so a resume repeats none
        save_total_limit=None,  # MarkCompleteCheckpoints drops old ones once the new one is whole
        logging_strategy="steps",
        logging_steps=train_cfg.logging_steps,
        logging_nan_inf_filter=False,  # a NaN loss must show, not be averaged away
        train_sampling_strategy="group_by_length" if train_cfg.group_by_length else "random",
        seed=seed,
        report_to=report_targets(train_cfg.report_to, run_dir),  # harness/execution/tracking.py
        save_only_model=False,
        **evaluation_arguments(train_cfg, device),
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
    # keep_predictions: each epoch's predictions go to <run_dir>/epoch_predictions/
    # (harness/storage/epoch_predictions.py)
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
