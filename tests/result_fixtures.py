"""A completed RunResult of every field, for the tests of what reads result.json."""

from __future__ import annotations

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


def completed(**changes) -> RunResult:
    """A result built the way harness/execution/experiment.py builds one: flat history records, the tracker's
    [step, count] lists."""
    records = [
        {
            "epoch": 1,
            "step": 10,
            "accuracy": 0.6,
            "accuracy_mm": None,  # null: undefined at that epoch
            "loss": 0.7,
            "eval_seconds": 1.5,
            "train_loss": None,
        },
        {
            "epoch": 2,
            "step": 20,
            "accuracy": 0.7,
            "accuracy_mm": 0.69,
            "loss": 0.5,
            "eval_seconds": 1.25,
            "train_loss": 0.6,
        },
    ]
    result = RunResult(
        status=COMPLETED,
        error=None,
        task="mnli",
        model="tiny-bert",
        method="aflora",
        seed=1,
        config={"train": {"lr": 0.01}, "data": {"dir": None}},
        metrics=Metrics(
            selection_metric="accuracy",
            best=EpochRecord.from_flat(records[1]),
            final=EpochRecord.from_flat(records[1]),
            per_epoch=[EpochRecord.from_flat(r) for r in records],
        ),
        params=Params(
            total=1000,
            head=66,
            trainable_start=400,
            trainable_end=100,
            trainable_avg=212.5,
            trainable_history=[[0, 400], [15, 100]],
        ),
        runtime=Runtime(
            train_seconds=20,  # an integer where a number is expected stays an integer
            train_cpu_seconds=18.5,
            seconds_per_epoch=10.0,
            cpu_seconds_per_epoch=9.25,
            train_samples_per_second=None,
            eval_seconds=2.75,
            threads=1,
            load_average=LoadAverage(start=[0.5, 0.4, 0.3], end=[1.0, 0.5, 0.3]),
            peak_memory_mb=100.0,
            resumed_from="checkpoint-10",
            steps=20,
            train_examples=32,
            device="cpu",
        ),
        weights=Weights(path="best", epoch=2, format="peft-adapter", bytes=4096),
        env=Env(python="3.11", torch="2.4", hostname="box", device="cpu: x86_64, 1 threads"),
        variant="",
        fingerprint="abc123",
    )
    for key, value in changes.items():
        setattr(result, key, value)
    return result
