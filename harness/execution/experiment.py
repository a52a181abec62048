"""One run: config -> data -> model -> method -> Trainer -> its result (harness/storage/result_schema.py)."""

from __future__ import annotations

import logging
import os
import resource
from collections.abc import Callable
from pathlib import Path

import torch
from datasets import Dataset
from omegaconf import DictConfig, OmegaConf
from transformers import PreTrainedTokenizerBase, set_seed

from harness.execution.assembly import assemble
from harness.execution.cpu_bf16 import EMULATED_BF16, emulated_bf16
from harness.execution.distributed import agree, is_main_process
from harness.execution.env import environment
from harness.execution.history import best_and_final, per_epoch_records, runtime_record
from harness.execution.training import (
    build_trainer,
    optimizer_steps,
    resolve_device,
    set_threads,
    training_arguments,
    world_size,
)
from harness.inputs.data import load_raw_splits, protocol_splits, take_examples, tokenize_splits
from harness.inputs.models import load_tokenizer
from harness.inputs.tasks import TaskSpec, task_spec
from harness.storage.best_weights import weights_summary
from harness.storage.result_schema import (
    COMPLETED,
    Env,
    EpochRecord,
    LoadAverage,
    Metrics,
    Params,
    RunResult,
    Runtime,
    Weights,
)
from harness.storage.rundir import load_callback_states, resumable_checkpoint

log = logging.getLogger(__name__)


def prepare_data(
    cfg: DictConfig, task: TaskSpec, tokenizer: PreTrainedTokenizerBase
) -> tuple[Dataset, dict[str, Dataset]]:
    """The training set and the sets evaluated after every epoch, as ``task.protocol`` (data.protocol)
    defines them (harness/inputs/data.py, ``protocol_splits``); the sample limits apply after that split."""
    raw = load_raw_splits(task, cfg.data.dir, cfg.data.hub_name)
    tokenized = tokenize_splits(raw, tokenizer, task, cfg.data.max_seq_length, cfg.data.pad_to_max_length)
    splits = protocol_splits(tokenized, task)
    train_set = take_examples(splits["train"], cfg.train.max_train_samples, cfg.train.train_sample_seed)
    eval_sets = {s: take_examples(splits[s], cfg.train.max_eval_samples) for s in task.evaluated_splits}
    return train_set, eval_sets


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_experiment(cfg: DictConfig, run_dir: Path, claim: Callable[[], None] = lambda: None) -> RunResult:
    """Train and evaluate; ``claim`` runs on rank 0 once data, model and method have built."""
    task = task_spec(cfg)  # checked before: harness/config/validation.py
    device = resolve_device(cfg.train.device)
    if cfg.train.precision == "bf16" and device.type == "cpu" and emulated_bf16():
        log.warning(EMULATED_BF16)
    set_threads(cfg.train.threads)
    load_at_start = os.getloadavg()
    set_seed(cfg.seed)  # before the model and adapters exist, so a resumed run rebuilds them identically

    tokenizer = load_tokenizer(cfg.model)
    train_set, eval_sets = prepare_data(cfg, task, tokenizer)
    steps_per_epoch, total_steps = optimizer_steps(len(train_set), cfg.train, world_size())
    assembly = assemble(cfg, task, steps_per_epoch=steps_per_epoch, total_steps=total_steps, run_dir=run_dir)
    built, model, callbacks = assembly.method, assembly.model, assembly.callbacks
    counts, tracker, timer = assembly.counts, assembly.tracker, assembly.timer

    args = training_arguments(cfg.train, str(run_dir), cfg.seed, device)
    if is_main_process():
        claim()  # the directory is this config's from here on (force=true: set the old run aside)
    checkpoint = agree(resumable_checkpoint(run_dir) if is_main_process() else None)  # rank 0's choice
    if checkpoint:
        log.info("Resuming from %s", checkpoint)
        load_callback_states(callbacks, checkpoint)
    optimizer = assembly.build_optimizer()  # after the callbacks' state is back (Assembly.build_optimizer)
    trainer = build_trainer(
        model, args, train_set, eval_sets, tokenizer, task, optimizer, callbacks, cfg.train.keep_predictions
    )
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)

    records = per_epoch_records(trainer.state.log_history, task)
    best, final = best_and_final(records, task)
    weights = weights_summary(run_dir, best["epoch"]) if cfg.train.save_best else None
    result = RunResult(
        status=COMPLETED,
        error=None,
        task=task.name,
        model=cfg.model.name,
        method=cfg.method.name,
        seed=cfg.seed,
        config=OmegaConf.to_container(cfg, resolve=True),
        metrics=Metrics(
            selection_metric=task.selection_metric,
            best=EpochRecord.from_flat(best),
            final=EpochRecord.from_flat(final),
            per_epoch=[EpochRecord.from_flat(r) for r in records],
        ),
        params=Params(total=counts["total"], head=counts["head"], **tracker.summary(trainer.state.global_step)),
        runtime=Runtime(
            **runtime_record(timer.seconds, timer.cpu_seconds, timer.epochs, records, len(train_set)),
            threads=torch.get_num_threads(),
            load_average=LoadAverage(start=list(load_at_start), end=list(os.getloadavg())),
            peak_memory_mb=peak_memory_mb(device),
            resumed_from=str(checkpoint) if checkpoint else None,
            steps=trainer.state.global_step,
            train_examples=len(train_set),
            device=str(device),
        ),
        weights=Weights(**weights) if weights else None,
        env=Env(**environment(device)),
    )
    for cb in built.callbacks:  # AFLoRA's freezing, AdaLoRA's ranks (harness/storage/result_schema.py)
        result.add_method_fields(cb.result_fields())
    return result
