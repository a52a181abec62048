"""What result.json holds: the one definition of its format.

A run writes a ``RunResult``: harness/execution/experiment.py when it completes, harness/execution/lifecycle.py when it
fails (``status="failed"``, the error, and no metrics). The report reads it back and validates it
through the same classes (harness/report/load.py). Both directions go through
harness/storage/typed_json.py, so these dataclasses are the format: the keys and their order in the file,
their types, and which may be absent (a field with a default: files from older code lack it).

A method adds fields of its own without editing this file: its callbacks' ``result_fields()``
(harness/execution/methods.py) are merged with ``RunResult.add_method_fields``. A key declared here for
methods (``freezing``, AFLoRA's) fills that field, which the report reads and checks; any other
key (AdaLoRA's ``ranks``, a new method's) is written at the top level as the method gave it, read
back into ``method_fields`` unchecked. Declare a method's field here once the report reads it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from harness.storage import typed_json
from harness.storage.typed_json import FieldError, rest

# Raise it when a reader of the old format would misread the new one (a key renamed, retyped or
# moved). A new optional field is no change: old readers ignore it and new ones default it.
SCHEMA_VERSION = 1

COMPLETED, FAILED = "completed", "failed"


@dataclass(kw_only=True)
class EpochRecord:
    """One evaluation: its epoch and optimizer step, then every number it produced.

    ``numbers`` is written inline beside ``epoch`` and ``step``, keyed as harness/execution/history.py keys
    them: the task's metrics, ``loss`` and ``eval_seconds`` for the first validation split, with
    the split's suffix for the others (MNLI's ``accuracy_mm``), and the epoch's mean
    ``train_loss``. Null: undefined (a NaN) or not logged.
    """

    epoch: int
    step: int | None = None
    numbers: dict[str, float | None] = rest()

    @classmethod
    def from_flat(cls, record: Mapping[str, Any]) -> EpochRecord:
        """From harness/execution/history.py's flat record. Not checked: a run must never lose its result
        to a value of an unexpected numeric type (strict_json writes numpy scalars as numbers)."""
        numbers = {k: v for k, v in record.items() if k not in ("epoch", "step")}
        return cls(epoch=record["epoch"], step=record.get("step"), numbers=numbers)


@dataclass(kw_only=True)
class Metrics:
    selection_metric: str  # the key the best epoch is chosen by: the task's first metric on its first split
    best: EpochRecord  # the paper's number: the epoch best on selection_metric (ties: the earliest)
    final: EpochRecord
    per_epoch: list[EpochRecord]


@dataclass(kw_only=True)
class Params:
    """Parameter counts. The trainable ones leave out the classifier head (the paper's #Params)."""

    total: int  # every parameter, head and adapters included
    head: int  # the classifier head, trained by every method
    trainable_start: int
    trainable_end: int
    trainable_avg: float  # over optimizer steps: AFLoRA freezes and AdaLoRA prunes while training
    trainable_history: list[tuple[int, int]]  # (step, count) change points; count holds from step + 1

    def __post_init__(self) -> None:
        # The tracker keeps [step, count] lists (its checkpoint state is JSON); as tuples, a
        # result built by a run compares equal to the same result read back from its file.
        self.trainable_history = [tuple(pair) for pair in self.trainable_history]

    def check(self) -> None:
        if not self.trainable_history:
            raise FieldError("trainable_history", "is empty (expected [[step, count], ...])")


@dataclass(kw_only=True)
class LoadAverage:
    """The machine's 1, 5 and 15-minute load averages: a busy machine slows every clock but CPU time."""

    start: list[float]
    end: list[float]


@dataclass(kw_only=True)
class Runtime:
    """Training time without evaluation (harness/execution/epoch_timer.py), then what explains it. Null per epoch
    or per sample: the timer saw no complete epoch (shown as missing, never as zero)."""

    train_seconds: float  # wall clock
    train_cpu_seconds: float | None = None  # the process's CPU time, every thread added up
    seconds_per_epoch: float | None
    cpu_seconds_per_epoch: float | None = None
    train_samples_per_second: float | None
    eval_seconds: float | None = None
    threads: int | None = None  # torch's intra-op threads (train.threads)
    load_average: LoadAverage | None = None
    peak_memory_mb: float | None = None  # CUDA: allocated by torch; CPU: the process's peak RSS
    resumed_from: str | None = None  # the checkpoint the last attempt resumed from
    steps: int | None = None  # optimizer steps
    train_examples: int | None = None
    device: str | None = None


@dataclass(kw_only=True)
class Weights:
    """Where the best epoch's weights were saved (harness/storage/best_weights.py)."""

    path: str  # relative to the run directory
    epoch: int
    format: str  # "peft-adapter", "classifier-head" or "transformers-model" (harness/storage/weights_format.py)
    bytes: int


@dataclass(kw_only=True)
class Env:
    """What produced the run (harness/execution/env.py). Every field may be absent: a failure records what it could."""

    python: str | None = None
    torch: str | None = None
    transformers: str | None = None
    peft: str | None = None
    datasets: str | None = None
    device: str | None = None
    hostname: str | None = None
    git_commit: str | None = None  # "-dirty" when tracked files had changes
    created_at: str | None = None  # UTC, ISO 8601


# Method fields the report reads and checks; a method may set them, and no other declared field.
DECLARED_METHOD_FIELDS = frozenset({"freezing"})


@dataclass(kw_only=True)
class RunResult:
    """One result.json. A failed run has its identity, the error, and whatever else was known."""

    schema_version: int = SCHEMA_VERSION
    status: str  # "completed" or "failed" (a run still training has written none)
    error: str | None  # "<ExceptionType>: <message>" of a failed run
    task: str
    model: str
    method: str
    seed: int
    config: dict[str, Any] | None = None  # the resolved Hydra config
    metrics: Metrics | None = None
    params: Params | None = None
    runtime: Runtime | None = None
    weights: Weights | None = None  # null: not saved (train.save_best=false) or not of the best epoch
    freezing: dict[str, int | None] | None = None  # AFLoRA: the step each projection froze; null: never
    env: Env | None = None
    method_fields: dict[str, Any] = rest()  # other methods' result_fields(), e.g. AdaLoRA's ranks
    variant: str | None = None  # the run directory's override folder ("" for none; harness/storage/identity.py)
    fingerprint: str | None = None  # of the config that produced a completed run (fingerprint.json)

    def check(self) -> None:
        """What types cannot say; harness/storage/typed_json.py calls it after reading a file."""
        if self.schema_version > SCHEMA_VERSION:
            raise FieldError("schema_version", f"is {self.schema_version} (this code reads up to {SCHEMA_VERSION})")
        if self.status not in (COMPLETED, FAILED):
            raise FieldError("status", f"is {self.status!r} (expected {COMPLETED!r} or {FAILED!r})")
        if self.status == COMPLETED:
            for name in ("config", "metrics", "params", "runtime", "env"):
                if getattr(self, name) is None:
                    raise FieldError(name, "is missing or null (expected object: the run completed)")

    def check_scores(self, names: Iterable[str]) -> None:
        """Each of ``names`` is a number in [-1, 1] at the best epoch of this completed run: what a
        table's column shows (the report asks for its columns' metrics, MNLI's ``accuracy`` and
        ``accuracy_mm``). Raises FieldError."""
        best = self.metrics.best.numbers
        for name in names:
            where = f"metrics.best.{name}"
            if best.get(name) is None:
                raise FieldError(where, f"is {'null' if name in best else 'missing'} (expected number)")
            # Fractions are expected; a value like 71.0 means someone wrote percentages.
            if not math.isnan(best[name]) and not -1.0 <= best[name] <= 1.0:
                raise FieldError(where, f"is {best[name]}, outside [-1, 1] (expected a fraction)")

    def add_method_fields(self, reported: Mapping[str, Any]) -> None:
        """Merge a method callback's ``result_fields()`` (see the module's doc)."""
        declared = {f.name for f in fields(self)}
        for key, value in reported.items():
            if key in DECLARED_METHOD_FIELDS:
                setattr(self, key, value)
            elif key in declared:
                raise ValueError(f"a method's result_fields() cannot set result.json's {key!r}")
            else:
                self.method_fields[key] = value

    def to_json(self) -> dict[str, Any]:
        return typed_json.to_json(self)

    @classmethod
    def from_json(cls, data: Any) -> RunResult:
        """Read and check a parsed result.json; raises FieldError naming the dotted field."""
        return typed_json.from_json(cls, data)
