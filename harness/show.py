"""Print a one-screen summary of a result.json: python -m harness.show runs/.../result.json"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.core.errors import HarnessError, print_user_error
from harness.storage.result_schema import COMPLETED, RunResult
from harness.storage.results import load_result


def summary(result: RunResult) -> str:
    head = f"{result.model} / {result.task} / {result.method} / seed {result.seed}: {result.status}"
    if result.status != COMPLETED:
        return f"{head}\n  error: {result.error}"
    metrics, params, runtime = result.metrics, result.params, result.runtime
    key = metrics.selection_metric
    lines = [head, f"  {'epoch':>5}  {key:>22}  {'eval loss':>9}  {'train loss':>10}"]
    for record in metrics.per_epoch:
        numbers = record.numbers
        lines.append(
            f"  {record.epoch:>5}  {_number(numbers.get(key), '22.4f')}  {_number(numbers.get('loss'), '9.4f')}"
            f"  {_number(numbers.get('train_loss'), '10.4f')}"
        )
    best = metrics.best
    lines.append(f"  best {key} {_number(best.numbers.get(key), '.4f')} at epoch {best.epoch}")
    lines.append(
        f"  trainable (head excluded): start {params.trainable_start:,}, end {params.trainable_end:,}, "
        f"time-weighted {params.trainable_avg:,.0f}; head {params.head:,}"
    )
    per_epoch = "" if runtime.seconds_per_epoch is None else f" ({runtime.seconds_per_epoch:.1f} s/epoch)"
    lines.append(f"  training {runtime.train_seconds:.0f} s{per_epoch} on {result.env.device}")
    if result.freezing:
        lines.append(freezing_line(result.freezing))
    if result.weights:
        w = result.weights
        lines.append(f"  epoch {w.epoch}'s weights in {w.path}/ ({w.format}, {w.bytes:,} bytes)")
    return "\n".join(lines)


def _number(value: float | None, spec: str) -> str:
    """A number of the file, or "-" right-aligned where it is null (undefined, or not logged)."""
    width = spec.split(".")[0]
    return format(value, spec) if value is not None else format("-", f">{width or 1}")


def freezing_line(freezing: dict[str, int | None]) -> str:
    """AFLoRA's freezing in one line. Step 0 marks the matrices that never trained (the attention
    projections of trainable_projections=ffn), so they are counted apart from the adaptive freezes."""
    trained = [step for step in freezing.values() if step != 0]
    frozen = [step for step in trained if step is not None]
    line = f"  froze {len(frozen)} of {len(trained)} trainable projection matrices"
    line += f", the last at step {max(frozen)}" if frozen else ""
    never = len(freezing) - len(trained)
    return line + (f"; {never} were frozen from the start" if never else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("result", type=Path, help="a result.json written by run.py")
    args = parser.parse_args(argv)
    try:
        print(summary(load_result(args.result)))
    except HarnessError as err:
        return print_user_error(err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
