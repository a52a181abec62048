"""Interleaved step timing: every row takes one training step per round, round-robin, so drift
(other processes on a shared machine, clock changes, thermal) hits every row alike.

A step is what the harness's Trainer does per optimizer step: forward, backward, the callbacks'
``on_pre_optimizer_step`` (method callbacks first, then the harness's gradient clipping), the
optimizer step, ``on_optimizer_step``, ``zero_grad``, ``on_step_end``. The callbacks are driven by
hand with a real ``TrainingArguments`` and a ``TrainerState`` whose ``global_step`` advances, so a
method's bookkeeping (AFLoRA's freezer, AdaLoRA's allocator) is inside the step, and the time its
callbacks take is recorded on its own.

Clocks. On CUDA the clock is wall time (with a device sync around every step). On CPU it is the
process's CPU time by default, with one intra-op thread: on a shared machine wall time measures
the neighbours' load as much as the step (a round of the default bench took 10 s quiet and 90 s
busy), while the CPU time one thread spends is what the step costs, and equals its wall time on
an idle machine. Wall times are recorded too.

Precision. ``bf16`` runs each forward under ``torch.autocast`` to bfloat16, with weights, gradients
and optimizer state in float32: what ``train.precision=bf16`` (the Trainer's ``bf16=True``) does.

Memory. On CUDA, a row's peak is its static footprint (weights, buffers, optimizer state) plus the
most its step allocates on top (activations, gradients): the peak it would have alone on the
device, although all rows share it here. CPU allocations have no such counters: peak is None there.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from transformers import TrainerControl, TrainingArguments

from harness.bench.rows import Row

log = logging.getLogger(__name__)


Clock = Callable[[], float]
CLOCKS: dict[str, Clock] = {"wall": time.perf_counter, "cpu": time.process_time}


@dataclass
class Timing:
    seconds: list[float] = field(default_factory=list)  # one step per round, on the chosen clock
    wall: list[float] = field(default_factory=list)  # the same steps' wall time
    bookkeeping: list[float] = field(default_factory=list)  # of which in the method's callbacks
    static_bytes: int = 0
    transient_bytes: int | None = None  # CUDA only

    @property
    def peak_bytes(self) -> int | None:
        return None if self.transient_bytes is None else self.static_bytes + self.transient_bytes


def make_batch(model: torch.nn.Module, batch: int, seq: int, device: torch.device, seed: int = 0) -> dict:
    """``batch`` x ``seq`` random token ids (no padding) and random labels: the same for every row."""
    generator = torch.Generator().manual_seed(seed)
    vocab = model.config.vocab_size
    ids = torch.randint(min(1000, vocab - 1), vocab, (batch, seq), generator=generator)  # skip special ids
    labels = torch.randint(0, model.config.num_labels, (batch,), generator=generator)
    return {
        "input_ids": ids.to(device),
        "attention_mask": torch.ones_like(ids).to(device),
        "labels": labels.to(device),
    }


PRECISIONS = ("fp32", "bf16")


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The forward's autocast context: bfloat16 matrix products for ``bf16``, none for ``fp32``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {list(PRECISIONS)}")
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def synchronizer(device: torch.device) -> Callable[[], None]:
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)


def _hooks(row: Row, event: str, args: TrainingArguments, sync: Callable[[], None], clock: Clock) -> float:
    """Run one event on every callback; return the seconds the method's callbacks took."""
    control, kwargs = TrainerControl(), {"model": row.model, "optimizer": row.optimizer}
    spent = 0.0
    if row.method_callbacks:
        sync()
        start = clock()
        for cb in row.method_callbacks:
            getattr(cb, event)(args, row.state, control, **kwargs)
        sync()
        spent = clock() - start
    for cb in row.harness_callbacks:
        getattr(cb, event)(args, row.state, control, **kwargs)
    return spent


def train_step(
    row: Row, batch: dict, args: TrainingArguments, sync: Callable[[], None], clock: Clock, precision: str = "fp32"
) -> float:
    """One optimizer step; returns the seconds spent in the method's callbacks."""
    with autocast(batch["input_ids"].device, precision):
        loss = row.model(**batch).loss
    loss.backward()
    spent = _hooks(row, "on_pre_optimizer_step", args, sync, clock)
    row.optimizer.step()
    spent += _hooks(row, "on_optimizer_step", args, sync, clock)
    row.optimizer.zero_grad(set_to_none=True)
    row.state.global_step += 1
    spent += _hooks(row, "on_step_end", args, sync, clock)
    return spent


def static_bytes(row: Row) -> int:
    """Weights, buffers and optimizer state, each storage once (VeRA shares its A and B)."""
    tensors = [*row.model.parameters(), *row.model.buffers()]
    for state in row.optimizer.state.values():
        tensors += [v for v in state.values() if torch.is_tensor(v)]
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return sum(storages.values())


def measure(
    rows: list[Row],
    batch: dict,
    args: TrainingArguments,
    device: torch.device,
    warmup: int,
    reps: int,
    clock: str = "wall",
    precision: str = "fp32",
) -> dict[str, Timing]:
    """``warmup`` untimed rounds, then ``reps`` timed rounds; the row order rotates every round."""
    sync, tick = synchronizer(device), CLOCKS[clock]
    timings = {row.name: Timing() for row in rows}
    for _ in range(warmup):
        for row in rows:
            train_step(row, batch, args, sync, tick, precision)
    for row in rows:  # optimizer state exists now
        timings[row.name].static_bytes = static_bytes(row)
    for rep in range(reps):
        start = time.perf_counter()
        shift = rep % len(rows)
        for row in rows[shift:] + rows[:shift]:
            timing = timings[row.name]
            if device.type == "cuda":
                before = torch.cuda.memory_allocated(device)
                torch.cuda.reset_peak_memory_stats(device)
            sync()
            t0, w0 = tick(), time.perf_counter()
            spent = train_step(row, batch, args, sync, tick, precision)
            sync()
            timing.seconds.append(tick() - t0)
            timing.wall.append(time.perf_counter() - w0)
            timing.bookkeeping.append(spent)
            if device.type == "cuda":
                transient = torch.cuda.max_memory_allocated(device) - before
                timing.transient_bytes = max(timing.transient_bytes or 0, transient)
        log.info("round %d/%d: %.1f s", rep + 1, reps, time.perf_counter() - start)
    return timings


def bookkeeping_per_step(
    row: Row,
    batch: dict,
    args: TrainingArguments,
    device: torch.device,
    window: int,
    clock: str = "wall",
    precision: str = "fp32",
) -> float:
    """Mean seconds per step of the row's method callbacks over ``window`` consecutive steps.

    AFLoRA's freezer accumulates the sensitivity every step and advances its averages and decides
    once per window of ΔT steps, so ΔT consecutive steps hold exactly one decision: their mean is
    the bookkeeping's per-step cost. Measured on one real gradient (one backward), steps advancing.
    """
    sync, tick = synchronizer(device), CLOCKS[clock]
    with autocast(device, precision):
        loss = row.model(**batch).loss
    loss.backward()
    spent = 0.0
    control, kwargs = TrainerControl(), {"model": row.model, "optimizer": row.optimizer}
    sync()
    for _ in range(window):
        start = tick()
        for event in ("on_pre_optimizer_step", "on_optimizer_step", "on_step_end"):
            for cb in row.method_callbacks:
                getattr(cb, event)(args, row.state, control, **kwargs)
        sync()
        spent += tick() - start
        row.state.global_step += 1
    row.optimizer.zero_grad(set_to_none=True)
    return spent / window
