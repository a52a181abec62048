"""Turn the measurements into the report: one dict (written as JSON) and its Markdown rendering.

Time ratios are paired: row a's step of round i over row b's step of the same round, median over
rounds. Steps of one round run back to back, so slow phases of a shared machine cancel out.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from harness.bench.rows import Row
from harness.bench.timing import Timing

MIB = 2**20
# docs/method.md, "Published numbers", the paper's efficiency figure, normalised to ELoRA.
PAPER = {
    "runtime": {"aflora": 0.539, "lora": 0.652, "elora": 1.0},
    "flops": {"aflora": 0.334, "lora": 0.337, "elora": 1.0},
}
PRECISION_TEXT = {
    "fp32": "fp32 throughout",
    "bf16": "bf16 autocast (matrix products in bfloat16; weights, gradients and AdamW state in fp32, as "
    "train.precision=bf16 trains)",
}
CLOCK_TEXT = {
    "wall": "wall time (CUDA: synchronised around every step)",
    "cpu": "process CPU time (a shared machine's load inflates wall time far more than this)",
}
LIMITS = {"aflora_frozen_vs_elora": 0.539, "freezer_bookkeeping": 0.02, "aflora_frozen_vs_floor": 1.10}


def paired_ratio(a: list[float], b: list[float]) -> float:
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


def _quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q3


def summarise(
    rows: list[Row],
    timings: dict[str, Timing],
    macs: dict[str, dict[str, int]],
    freezer_per_step: float | None,
    batch_size: int,
    judged: bool = True,
) -> tuple[list[dict[str, Any]], dict[str, Any], list[dict[str, Any]]]:
    """(per-row records, freezer overhead, targets). ``judged=False`` (a quick run): the targets'
    values are shown but not held against their limits, which hold at the default sizes only."""
    records = []
    for row in rows:
        t = timings[row.name]
        median = statistics.median(t.seconds)
        q1, q3 = _quartiles(t.seconds)
        record = {
            "name": row.name,
            "note": row.note,
            "trainable": row.trainable,
            "head": row.head,
            "step_ms": 1e3 * median,
            "step_ms_q1": 1e3 * q1,
            "step_ms_q3": 1e3 * q3,
            "wall_ms": 1e3 * statistics.median(t.wall),
            "samples_per_second": batch_size / median,
            "callbacks_ms": 1e3 * statistics.fmean(t.bookkeeping),
            "peak_mib": None if t.peak_bytes is None else t.peak_bytes / MIB,
            "static_mib": t.static_bytes / MIB,
            "macs_per_token": macs[row.name],
            "step_seconds": t.seconds,
            "wall_seconds": t.wall,
        }
        for ref in ("elora", "lora"):
            if ref in timings:
                record[f"time_vs_{ref}"] = paired_ratio(t.seconds, timings[ref].seconds)
                record[f"macs_vs_{ref}"] = macs[row.name]["total"] / macs[ref]["total"]
        records.append(record)
    freezer = _freezer_overhead(timings, freezer_per_step)
    return records, freezer, _targets(timings, freezer, judged)


def _freezer_overhead(timings: dict[str, Timing], per_step: float | None) -> dict[str, Any]:
    if per_step is None or "aflora-nofreezer" not in timings or "aflora" not in timings:
        return {}
    base = statistics.median(timings["aflora-nofreezer"].seconds)
    with_freezer = timings["aflora"]
    return {
        "per_step_ms": 1e3 * per_step,
        "fraction_of_step": per_step / base,
        "in_loop_fraction": sum(with_freezer.bookkeeping) / sum(with_freezer.seconds),
        "ab_ratio": paired_ratio(with_freezer.seconds, timings["aflora-nofreezer"].seconds),
    }


def _targets(timings: dict[str, Timing], freezer: dict[str, Any], judged: bool) -> list[dict[str, Any]]:
    def target(key: str, text: str, value: float | None, rounds: list[float] | None = None) -> dict[str, Any]:
        limit = LIMITS[key]
        return {
            "name": key,
            "text": text,
            "value": value,
            "limit": limit,
            "pass": None if value is None or not judged else value <= limit,
            "rounds": rounds,  # the per-round ratios whose median is the value
        }

    def ratio(key: str, text: str, a: str, b: str) -> dict[str, Any]:
        if a not in timings or b not in timings:
            return target(key, text, None)
        rounds = [x / y for x, y in zip(timings[a].seconds, timings[b].seconds, strict=True)]
        return target(key, text, statistics.median(rounds), rounds)

    return [
        ratio("aflora_frozen_vs_elora", "AFLoRA (all frozen) step / ELoRA r=1024 step", "aflora-frozen", "elora"),
        target("freezer_bookkeeping", "AFLoRA freezer bookkeeping / step", freezer.get("fraction_of_step")),
        ratio("aflora_frozen_vs_floor", "AFLoRA (all frozen) step / floor step", "aflora-frozen", "floor"),
    ]


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


def markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    lines = [
        f"# Speed benchmark: {report['model']} on {report['device']}, {s.get('precision', 'fp32')}",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Machine: {report['machine']['device']}; torch {report['machine']['torch']}, "
        f"transformers {report['machine']['transformers']}, peft {report['machine']['peft']}; "
        f"git {report['machine']['git_commit']}; {report['machine']['created_at']}.",
        "",
        f"Batch {s['batch']} x {s['seq']} tokens (random ids, no padding), {s['warmup']} warm-up and "
        f"{s['reps']} timed rounds; every round steps each row once, in a rotating order. A step is "
        "forward, backward, the method's callbacks, gradient clipping, AdamW, zero_grad (as the "
        "harness's Trainer runs it). Time ratios are the median over rounds of the ratio within a round.",
        "",
        f"Precision: {PRECISION_TEXT[s.get('precision', 'fp32')]}.",
        "",
        f"Clock: {CLOCK_TEXT[s['clock']]}, {s['threads']} intra-op thread(s). Step ms, samples/s and every "
        "time ratio use it; wall ms is the same steps' wall-clock median, for reference.",
        "",
        "| row | trainable (head excl.) | step ms (median [q1, q3]) | wall ms | samples/s | callbacks ms/step | "
        "peak MiB | static MiB | linear MACs/token | time vs ELoRA | time vs LoRA | MACs vs ELoRA | MACs vs LoRA |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['name']} | {r['trainable']:,} | {r['step_ms']:.1f} [{r['step_ms_q1']:.1f}, {r['step_ms_q3']:.1f}] | "
            f"{r['wall_ms']:.1f} | "
            f"{r['samples_per_second']:.1f} | {r['callbacks_ms']:.2f} | {_fmt(r['peak_mib'], '.0f')} | "
            f"{r['static_mib']:.0f} | {r['macs_per_token']['total']:,} | {_fmt(r.get('time_vs_elora'))} | "
            f"{_fmt(r.get('time_vs_lora'))} | {_fmt(r.get('macs_vs_elora'))} | {_fmt(r.get('macs_vs_lora'))} |"
        )
    lines += ["", "Rows:"] + [f"- `{r['name']}`: {r['note'] or 'the method yaml as is'}" for r in report["rows"]]
    lines += [f"- `{name}`: skipped, {why}" for name, why in report["skipped"].items()]
    lines += ["", "## Targets", ""]
    if s.get("quick"):
        lines += ["A quick run (a tiny batch, 3 rounds) cannot judge the targets: each is n/a, its value shown.", ""]
    for t in report["targets"]:
        verdict = "n/a" if t["pass"] is None else ("PASS" if t["pass"] else "FAIL")
        spread = f"; rounds {min(t['rounds']):.3f}-{max(t['rounds']):.3f}" if t["rounds"] else ""
        lines.append(f"- {verdict}: {t['text']} = {_fmt(t['value'], '.4g')} (limit {t['limit']}{spread})")
    f = report["freezer"]
    if f:
        lines += [
            "",
            f"Freezer bookkeeping: {f['per_step_ms']:.2f} ms per step, averaged over one window of ΔT steps "
            f"(one decision each), = {100 * f['fraction_of_step']:.2f} % of the `aflora-nofreezer` median "
            f"step (the target's number). In the timed loop it took {100 * f['in_loop_fraction']:.2f} % of the "
            f"`aflora` steps; the A/B step ratio `aflora` / `aflora-nofreezer` is {f['ab_ratio']:.3f} "
            "(within the timing noise: the direct measurement is the one a 2 % limit can resolve).",
        ]
    by_name = {r["name"]: r for r in report["rows"]}
    if "aflora-frozen" in by_name and "aflora-frozen-unfolded" in by_name:
        folding = paired_ratio(
            by_name["aflora-frozen"]["step_seconds"], by_name["aflora-frozen-unfolded"]["step_seconds"]
        )
        lines += [
            "",
            f"Folding: `aflora-frozen` / `aflora-frozen-unfolded` step = {folding:.3f} (median of the paired "
            "rounds): the frozen adapters folded into W0 during the step against the layer-by-layer path.",
        ]
    lines += [
        "",
        "## Notes",
        "",
        "- Linear MACs per token (the paper's FLOPs measure): backbone `nn.Linear` in·out plus each adapter "
        "path r·in + r·out; attention products, the head (once per sequence) and the elementwise "
        "scalings (d, b, LoRA's α/r) are not counted. AdaLoRA counts its initial rank (masked ranks still "
        "compute). ELoRA/VeRA's r = 1024 makes their path several times the backbone's cost.",
        f"- The paper's figure (normalised to ELoRA): runtime AFLoRA {PAPER['runtime']['aflora']}, LoRA "
        f"{PAPER['runtime']['lora']}; FLOPs AFLoRA {PAPER['flops']['aflora']}, LoRA {PAPER['flops']['lora']}. "
        "Its runtime is over whole training runs (AFLoRA mostly frozen), on DeBERTaV3-base and a GPU.",
        "- Rows built on the AFLoRA layer (`aflora*`, `elora`) fold each adapter whose A and B are both "
        "frozen into W0 during the step when the batch has at least 2·in·out/(in+out) tokens "
        "(`aflora/folded.py`); the MACs column counts the model's layers either way.",
        "- Peak MiB: on CUDA static footprint + the step's peak allocation on top (the peak of the row "
        "alone); n/a on CPU (no allocator counters). Static MiB: weights, buffers and AdamW state.",
        "- Callbacks ms/step: mean time in the method's own callbacks in the timed steps (AdaLoRA's "
        "allocator, AFLoRA's freezer), already inside the step time.",
    ]
    return "\n".join(lines) + "\n"


def write(report: dict[str, Any], out_dir: Path, stem: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js = out_dir / f"{stem}.md", out_dir / f"{stem}.json"
    md.write_text(markdown(report))
    js.write_text(json.dumps(report, indent=2) + "\n")
    return md, js
