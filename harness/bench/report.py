"""Turn the measurements into the report: one dict (written as JSON) and its Markdown rendering.

Time ratios are paired: row a's step of round i over row b's step of the same round, median over
rounds. Steps of one round run back to back, so slow phases of a shared machine cancel out.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from harness.bench.peak import mfu, step_flops
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
# Issue 25: training throughput of each of these against the baseline variant (today's fp32), and
# AFLoRA's whole-run training time against LoRA's (the paper's 0.539 / 0.652 = 0.83).
SPEEDUP_ROWS = ("lora", "aflora", "elora")
SPEEDUP_TARGET = 2.0
AFLORA_RUN_VS_LORA = 0.80


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
    train_macs: dict[str, dict[str, int]],
    peaks: dict[str, dict[str, Any]],
    freezer_per_step: float | None,
    batch_size: int,
    tokens: int,
    judged: bool = True,
) -> tuple[list[dict[str, Any]], dict[str, Any], list[dict[str, Any]]]:
    """(per-row records, freezer overhead, targets). ``tokens``: per step, batch x seq. ``judged=False``
    (a quick run): the targets' values are shown but not held against their limits, which hold at the
    default sizes only."""
    records = []
    key = {(row.row, row.variant.label): row.name for row in rows}
    for row in rows:
        t = timings[row.name]
        median = statistics.median(t.seconds)
        q1, q3 = _quartiles(t.seconds)
        flops = step_flops(train_macs[row.name]["total"], tokens)
        record = {
            "name": row.name,
            "row": row.row,
            "variant": row.variant.label,
            "precision": row.variant.precision,
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
            "train_macs_per_token": train_macs[row.name],
            "step_flops": flops,
            "model_flops_per_second": flops / median,
            "mfu": mfu(flops, median, peaks[row.variant.precision]["peak"]),
            "step_seconds": t.seconds,
            "wall_seconds": t.wall,
        }
        for ref in ("elora", "lora"):
            ref_key = key.get((ref, row.variant.label))
            if ref_key is not None:
                record[f"time_vs_{ref}"] = paired_ratio(t.seconds, timings[ref_key].seconds)
                record[f"macs_vs_{ref}"] = macs[row.name]["total"] / macs[ref_key]["total"]
        records.append(record)
    baseline = rows[0].variant.label
    first = {row.row: row.name for row in rows if row.variant.label == baseline}
    freezer = _freezer_overhead({name: timings[k] for name, k in first.items()}, freezer_per_step)
    targets = _targets({name: timings[k] for name, k in first.items()}, freezer, judged)
    return records, freezer, targets + _speed_targets(rows, timings, judged)


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


def _speed_targets(rows: list[Row], timings: dict[str, Timing], judged: bool = True) -> list[dict[str, Any]]:
    """Issue 25's targets: each variant's throughput over the baseline's (the first variant), paired
    by round, for LoRA, AFLoRA and ELoRA (at least 2.0 for the best variant); AFLoRA's whole-run
    time over LoRA's per variant (at most 0.80), estimated from the step rows and the schedule."""
    variants = list(dict.fromkeys(row.variant.label for row in rows))
    key = {(row.row, row.variant.label): row.name for row in rows}
    share = _frozen_share()
    targets = []
    for name in SPEEDUP_ROWS:
        ratios = {
            v: [
                b / x
                for b, x in zip(timings[key[(name, variants[0])]].seconds, timings[key[(name, v)]].seconds, strict=True)
            ]
            for v in variants[1:]
            if (name, v) in key and (name, variants[0]) in key
        }
        if not ratios:
            continue
        best = max(ratios, key=lambda v: statistics.median(ratios[v]))
        value = statistics.median(ratios[best])
        targets.append(
            {
                "name": f"speedup_{name}",
                "text": f"{name} samples per CPU second, {best} / {variants[0]}",
                "value": value,
                "limit": SPEEDUP_TARGET,
                "at_least": True,
                "pass": value >= SPEEDUP_TARGET if judged else None,
                "rounds": ratios[best],
                "by_variant": {v: statistics.median(r) for v, r in ratios.items()},
            }
        )
    for v in variants:
        needed = [key.get((name, v)) for name in ("aflora", "aflora-frozen", "lora")]
        if None in needed:
            continue
        open_, frozen, lora = (statistics.median(timings[k].seconds) for k in needed)
        value = ((1 - share) * open_ + share * frozen) / lora
        targets.append(
            {
                "name": f"aflora_run_vs_lora@{v}",
                "text": f"AFLoRA whole-run / LoRA training time at {v} (estimated: {1 - share:.4f} x `aflora` "
                f"+ {share:.4f} x `aflora-frozen` step, over `lora`)",
                "value": value,
                "limit": AFLORA_RUN_VS_LORA,
                "pass": value <= AFLORA_RUN_VS_LORA if judged else None,
                "rounds": None,
            }
        )
    return targets


def _frozen_share() -> float:
    """The mean over a run of r(t), the share of AFLoRA's projections frozen, on the schedule of
    conf/method/aflora.yaml (t_i and t_f as fractions of the run): the weight of the all-frozen step
    in the whole-run estimate. Projections freeze in score order, not all alike, so it is a model."""
    from omegaconf import OmegaConf

    from aflora.schedule import CubicSchedule
    from harness.config.lengths import Length
    from harness.core.paths import CONF_DIR

    method = OmegaConf.load(CONF_DIR / "method" / "aflora.yaml")
    total = 10_000
    lengths = [Length.parse(f"method.{key}", method[key]) for key in ("t_i", "t_f")]
    if any(length.unit != "fraction" for length in lengths):  # a share of the run has no epochs
        raise ValueError(f"conf/method/aflora.yaml: t_i and t_f must be percentages of the run, got {lengths}")
    t_i, t_f = (int(length.value * total) for length in lengths)
    schedule = CubicSchedule(total, t_i, t_f, interval=1)
    return statistics.fmean(schedule.fraction(step) for step in range(total))


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


def markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    lines = [
        f"# Speed benchmark: {report['model']} on {report['device']}, "
        + ", ".join(s.get("variants") or [s.get("precision", "fp32")]),
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
        *_precision_lines(report),
        "",
        f"Clock: {CLOCK_TEXT[s['clock']]}, {s['threads']} intra-op thread(s). Step ms, samples/s, GFLOP/s, MFU "
        "and every time ratio use it; wall ms is the same steps' wall-clock median, for reference.",
        "",
        *_peak_lines(report),
        "",
        "| row | trainable (head excl.) | step ms (median [q1, q3]) | wall ms | samples/s | model GFLOP/s | MFU | "
        "callbacks ms/step | peak MiB | static MiB | linear MACs/token | time vs ELoRA | time vs LoRA | MACs vs ELoRA "
        "| MACs vs LoRA |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['name']} | {r['trainable']:,} | {r['step_ms']:.1f} [{r['step_ms_q1']:.1f}, {r['step_ms_q3']:.1f}] | "
            f"{r['wall_ms']:.1f} | {r['samples_per_second']:.1f} | {r['model_flops_per_second'] / 1e9:.1f} | "
            f"{r['mfu']:.3f} | {r['callbacks_ms']:.2f} | {_fmt(r['peak_mib'], '.0f')} | "
            f"{r['static_mib']:.0f} | {r['macs_per_token']['total']:,} | {_fmt(r.get('time_vs_elora'))} | "
            f"{_fmt(r.get('time_vs_lora'))} | {_fmt(r.get('macs_vs_elora'))} | {_fmt(r.get('macs_vs_lora'))} |"
        )
    notes = {r.get("row", r["name"]): r["note"] for r in report["rows"]}
    lines += ["", "Rows:"] + [f"- `{name}`: {note or 'the method yaml as is'}" for name, note in notes.items()]
    lines += [f"- `{name}`: skipped, {why}" for name, why in report["skipped"].items()]
    lines += ["", "## Targets", ""]
    if s.get("quick"):
        lines += ["A quick run (a tiny batch, 3 rounds) cannot judge the targets: each is n/a, its value shown.", ""]
    for t in report["targets"]:
        verdict = "n/a" if t["pass"] is None else ("PASS" if t["pass"] else "FAIL")
        spread = f"; rounds {min(t['rounds']):.3f}-{max(t['rounds']):.3f}" if t["rounds"] else ""
        bound = "at least" if t.get("at_least") else "limit"
        lines.append(f"- {verdict}: {t['text']} = {_fmt(t['value'], '.4g')} ({bound} {t['limit']}{spread})")
        if t.get("by_variant"):
            lines.append("  - every variant: " + ", ".join(f"{v} {x:.3f}" for v, x in t["by_variant"].items()))
    lines += _aflora_breakdown(report["rows"])
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
    if "aflora-frozen" in by_name and "aflora-frozen-unfolded" in by_name:  # one variant: rows go by their own name
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
        "- Model GFLOP/s: 2 x (forward + input-gradient + trainable-weight-gradient linear MACs per token) x "
        "batch x seq / step time (`harness/bench/flops.py`, `training_macs_per_token`); MFU divides it by the "
        "matmul peak of the row's precision above. The optimizer, norms, activations and attention products "
        "are work the count leaves out, so MFU is the share of the step that is the model's linear algebra "
        "at the machine's best matmul speed. A folded frozen adapter (`aflora/folded.py`) runs fewer FLOPs than "
        "its rank-r path counts, so ELoRA's (r = 1024) and AFLoRA's MFU can pass 1 at fp32; under bf16 autocast "
        "nothing folds.",
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


def _precision_lines(report: dict[str, Any]) -> list[str]:
    variants = report["settings"].get("variants") or [report["settings"].get("precision", "fp32")]
    if len(variants) == 1:
        return [f"Precision: {PRECISION_TEXT[variants[0].split('+')[0]]}."]
    return [
        f"Variants (`harness/bench/variants.py`), each row run under each, `row@variant`: {', '.join(variants)}; "
        f"the first is the baseline of the speed-up targets. bf16 = {PRECISION_TEXT['bf16']}.",
    ]


def _peak_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    for precision, peak in report.get("peaks", {}).items():
        shapes = ", ".join(f"{shape} {flops / 1e9:.0f}" for shape, flops in peak["shapes"].items())
        lines.append(
            f"Peak, {precision}: {peak['peak'] / 1e9:.1f} GFLOP/s, the best of ({report['settings']['batch']} x "
            f"{report['settings']['seq']} tokens, in) @ (in, out) on the model's linear shapes, measured in this "
            f"run (GFLOP/s per in x out: {shapes})."
        )
    return lines


def _aflora_breakdown(rows: list[dict[str, Any]]) -> list[str]:
    """Where AFLoRA's step goes, per variant: differences of the median steps of its rows."""
    steps = {(r.get("row", r["name"]), r.get("variant", "")): r["step_ms"] for r in rows}
    parts = [
        ("backbone, head, gradients through every layer", "floor", None),
        ("adapter paths, all frozen (folded where it pays)", "aflora-frozen", "floor"),
        ("folding saves", "aflora-frozen-unfolded", "aflora-frozen"),
        ("trainable projections (their gradients, AdamW)", "aflora-nofreezer", "aflora-frozen"),
        ("freezer: scores, windows, decisions", "aflora", "aflora-nofreezer"),
        ("LoRA's adapter paths, trainable", "lora", "floor"),
    ]
    lines = []
    for variant in dict.fromkeys(v for _, v in steps):
        have = {name for name, v in steps if v == variant}
        if not {"floor", "aflora", "aflora-nofreezer", "aflora-frozen", "lora"} <= have:
            continue
        cells = [
            f"{text}: {steps[(a, variant)] - (steps[(b, variant)] if b else 0):.0f}"
            for text, a, b in parts
            if a in have and (b is None or b in have)
        ]
        lines.append(f"- {variant or 'this run'}: " + "; ".join(cells) + " ms.")
    if lines:
        lines = ["", "AFLoRA's step, row by row (differences of median step ms; negative = within noise):", *lines]
    return lines


def write(report: dict[str, Any], out_dir: Path, stem: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js = out_dir / f"{stem}.md", out_dir / f"{stem}.json"
    md.write_text(markdown(report))
    js.write_text(json.dumps(report, indent=2) + "\n")
    return md, js
