"""One run: config -> data -> model -> method -> Trainer -> the result dictionary."""

from __future__ import annotations

import logging
import os
import resource
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from omegaconf import DictConfig, OmegaConf
from transformers import PreTrainedTokenizerBase, set_seed

from harness.best_weights import SaveBestWeights, weights_summary
from harness.checkpoints import MarkCompleteCheckpoints
from harness.data import load_raw_splits, take_examples, tokenize_splits
from harness.distributed import agree, is_main_process
from harness.env import environment
from harness.errors import ConfigError
from harness.gradients import ClipAndCheckGradients
from harness.history import best_and_final, per_epoch_records, runtime_summary
from harness.methods import BuildContext, method_builder
from harness.model_card import run_facts
from harness.models import check_sequence_length, head_modules, load_model, load_tokenizer
from harness.optim import build_optimizer
from harness.params import TrainableParamTracker, count_parameters, trainable_counter
from harness.results import SCHEMA_VERSION
from harness.rundir import load_callback_states, resumable_checkpoint
from harness.tasks import TaskSpec
from harness.timing import EpochTimer
from harness.training import (
    build_trainer,
    optimizer_steps,
    resolve_device,
    set_threads,
    training_arguments,
    validate_train_config,
    world_size,
)

log = logging.getLogger(__name__)


def prepare_data(
    cfg: DictConfig, task: TaskSpec, tokenizer: PreTrainedTokenizerBase
) -> tuple[Dataset, dict[str, Dataset]]:
    raw = load_raw_splits(task, cfg.data.dir, cfg.data.hub_name)
    tokenized = tokenize_splits(raw, tokenizer, task, cfg.data.max_seq_length, cfg.data.pad_to_max_length)
    train_set = take_examples(tokenized["train"], cfg.train.max_train_samples, cfg.train.train_sample_seed)
    eval_sets = {s: take_examples(tokenized[s], cfg.train.max_eval_samples) for s in task.eval_splits}
    return train_set, eval_sets


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_experiment(cfg: DictConfig, run_dir: Path, claim: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """Train and evaluate; ``claim`` runs on rank 0 once data, model and method have built."""
    task = TaskSpec.from_config(cfg.task)
    validate_train_config(cfg.train)
    device = resolve_device(cfg.train.device)
    set_threads(cfg.train.threads)
    load_at_start = os.getloadavg()
    set_seed(cfg.seed)  # before the model and adapters exist, so a resumed run rebuilds them identically

    tokenizer = load_tokenizer(cfg.model)
    train_set, eval_sets = prepare_data(cfg, task, tokenizer)
    model = load_model(cfg.model, task)
    check_sequence_length(model, cfg.data.max_seq_length)

    heads = head_modules(cfg.model)
    steps_per_epoch, total_steps = optimizer_steps(len(train_set), cfg.train, world_size())
    ctx = BuildContext(
        target_modules=list(cfg.model.target_modules),
        head_modules=heads,
        total_steps=total_steps,
        steps_per_epoch=steps_per_epoch,
        seed=cfg.seed,
    )
    builder = method_builder(cfg.method)
    try:
        built = builder(model, cfg.method, ctx)
    except ValueError as err:  # PEFT and the builders validate their configs with ValueError
        raise ConfigError(f"method {cfg.method.name!r}: {err}") from err
    model = built.model
    counts = count_parameters(model, heads)
    counter = next(
        (cb.trainable_parameters for cb in built.callbacks if hasattr(cb, "trainable_parameters")),
        trainable_counter(model, heads),
    )
    tracker, timer = TrainableParamTracker(counter), EpochTimer()
    # Method callbacks first: they see the raw gradients before the clipping callback runs.
    # The marker goes last: a checkpoint counts only once everything before it has saved.
    callbacks = [
        *built.callbacks,
        ClipAndCheckGradients(cfg.train.max_grad_norm),
        tracker,
        timer,
        MarkCompleteCheckpoints(),
    ]
    if cfg.train.save_best:  # the best epoch's weights, saved as it is evaluated (harness/best_weights.py)
        facts = run_facts(cfg, next(iter(task.eval_splits)), counts)
        callbacks.insert(-1, SaveBestWeights(run_dir, task, facts, counter))

    args = training_arguments(cfg.train, str(run_dir), cfg.seed, device)
    if is_main_process():
        claim()  # the directory is this config's from here on (force=true: set the old run aside)
    checkpoint = agree(resumable_checkpoint(run_dir) if is_main_process() else None)  # rank 0's choice
    if checkpoint:
        log.info("Resuming from %s", checkpoint)
        load_callback_states(callbacks, checkpoint)
    # Built after the callbacks' state is back: AFLoRA's freezer has frozen what the checkpoint
    # records, and its optimizer state holds only the parameters that were still training.
    optimizer = build_optimizer(model, cfg.train, heads)
    trainer = build_trainer(model, args, train_set, eval_sets, tokenizer, task, optimizer, callbacks)
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)

    records = per_epoch_records(trainer.state.log_history, task)
    best, final = best_and_final(records, task)
    result: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "status": "completed",
        "error": None,
        "task": task.name,
        "model": cfg.model.name,
        "method": cfg.method.name,
        "seed": cfg.seed,
        "config": OmegaConf.to_container(cfg, resolve=True),
        "metrics": {
            "selection_metric": task.selection_metric,
            "best": best,
            "final": final,
            "per_epoch": records,
        },
        "params": {"total": counts["total"], "head": counts["head"], **tracker.summary(trainer.state.global_step)},
        "runtime": {
            **runtime_summary(timer.seconds, timer.cpu_seconds, timer.epochs, records, len(train_set)),
            "threads": torch.get_num_threads(),
            "load_average": {"start": list(load_at_start), "end": list(os.getloadavg())},  # 1, 5, 15 min
            "peak_memory_mb": peak_memory_mb(device),
            "resumed_from": str(checkpoint) if checkpoint else None,
            "steps": trainer.state.global_step,
            "train_examples": len(train_set),
            "device": str(device),
        },
        "weights": weights_summary(run_dir, best["epoch"]) if cfg.train.save_best else None,
        "freezing": None,
        "env": environment(device),
    }
    for cb in built.callbacks:
        if hasattr(cb, "result_fields"):
            result.update(cb.result_fields())
    return result
