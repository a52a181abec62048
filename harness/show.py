"""Print a one-screen summary of a result.json: python -m harness.show runs/.../result.json"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def summary(result: dict) -> str:
    head = f"{result['model']} / {result['task']} / {result['method']} / seed {result['seed']}: {result['status']}"
    if result["status"] != "completed":
        return f"{head}\n  error: {result.get('error')}"
    metrics, params, runtime = result["metrics"], result["params"], result["runtime"]
    key = metrics["selection_metric"]
    lines = [head, f"  {'epoch':>5}  {key:>22}  {'eval loss':>9}  {'train loss':>10}"]
    for r in metrics["per_epoch"]:
        train_loss = f"{r['train_loss']:.4f}" if r.get("train_loss") is not None else "-"
        lines.append(f"  {r['epoch']:>5}  {r[key]:>22.4f}  {r['loss']:>9.4f}  {train_loss:>10}")
    best = metrics["best"]
    lines.append(f"  best {key} {best[key]:.4f} at epoch {best['epoch']}")
    lines.append(
        f"  trainable (head excluded): start {params['trainable_start']:,}, end {params['trainable_end']:,}, "
        f"time-weighted {params['trainable_avg']:,.0f}; head {params['head']:,}"
    )
    lines.append(
        f"  training {runtime['train_seconds']:.0f} s ({runtime['seconds_per_epoch']:.1f} s/epoch)"
        f" on {result['env']['device']}"
    )
    if result.get("freezing"):
        lines.append(freezing_line(result["freezing"]))
    if result.get("weights"):
        w = result["weights"]
        lines.append(f"  epoch {w['epoch']}'s weights in {w['path']}/ ({w['format']}, {w['bytes']:,} bytes)")
    return "\n".join(lines)


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
    if not args.result.exists():
        print(f"{args.result}: no such file", file=sys.stderr)
        return 1
    print(summary(json.loads(args.result.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
