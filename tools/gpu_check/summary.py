"""The GPU check's README.md: what ran, on what, and the numbers to read first.

Reads only what the steps wrote (env.json, the bench and epoch JSON, the runs' result.json files),
so it can be regenerated from a bundle: ``python -m tools.gpu_check.summary reports/gpu runs_gpu``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from harness.storage.result_schema import COMPLETED, RunResult
from harness.storage.results import RESULT_FILE, ResultFileError, load_result
from tools.gpu_check.plan import DRY_RUN, GPU, Plan, study_cells

# The paper's runtime over whole training runs, normalised to ELoRA (docs/method.md, "Published numbers";
# harness.bench.report)
PAPER_VS_ELORA = {"aflora": 0.539, "lora": 0.652, "elora": 1.0}


def _load(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _f(value: float | None, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


def completed_result(runs: Path, model: str, task: str, method: str, seed: int) -> RunResult | None:
    """The newest completed result.json of a cell (its run directory may hold a variant folder)."""
    found = sorted((runs / model / task / method / f"seed{seed}").rglob(RESULT_FILE), key=lambda p: p.stat().st_mtime)
    for path in reversed(found):
        try:
            result = load_result(path)
        except ResultFileError as err:  # the summary lists the cell as not run, and says why here
            print(f"warning: {err}", file=sys.stderr)
            continue
        if result.status == COMPLETED:
            return result
    return None


def env_section(env: dict[str, Any] | None) -> list[str]:
    if env is None:
        return ["## Machine", "", "No env.json: the install or environment step failed (logs/).", ""]
    acc, pk = env.get("accelerator", {}), env.get("packages", {})
    carried = ", ".join(f"{n} {v['version']}" for n, v in pk.items() if v["from"] == "carried") or "none"
    minilm = env.get("minilm", {})
    lines = [
        "## Machine",
        "",
        f"- Device: {env.get('device')} (capability {acc.get('capability', 'n/a')}, "
        f"{acc.get('memory_gib', 'n/a')} GiB, driver {acc.get('driver', 'n/a')}); "
        f"bf16 matmul {acc.get('bf16_matmul')}.",
        f"- Python {env.get('python')}, torch {env.get('torch')} (CUDA {acc.get('torch_cuda')}), transformers "
        f"{env.get('transformers')}, peft {env.get('peft')}, datasets {env.get('datasets')}; "
        f"git {env.get('git_commit')}; {env.get('created_at')}.",
        f"- Carried wheels in use: {carried}.",
        f"- MiniLM weights stored as {', '.join(minilm.get('stored', ['n/a']))}, loaded as "
        f"{', '.join(minilm.get('loaded', ['n/a']))}.",
    ]
    lines += [f"- Unmet requirement of a carried wheel: {u}" for u in env.get("unmet_requirements", [])]
    lines += [f"- Problem: {p}" for p in env.get("problems", [])]
    return [*lines, ""]


def speed_section(report: dict[str, Any], name: str) -> list[str]:
    s = report["settings"]
    lines = [
        f"## Speed bench, {s.get('precision', 'fp32')}: {report['model']}, batch {s['batch']} x {s['seq']}",
        "",
        f"[{name}.md]({'bench/' + name + '.md'}): median step of {s['reps']} interleaved rounds; peak memory of "
        "each row alone. The paper's column is its whole-run runtime relative to ELoRA (AFLoRA mostly frozen).",
        "",
        "| row | step ms | peak MiB | vs ELoRA | vs LoRA | paper vs ELoRA |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        paper = PAPER_VS_ELORA.get(r["name"].split("-")[0]) if r["name"] != "floor" else None
        lines.append(
            f"| {r['name']} | {r['step_ms']:.1f} | {_f(r['peak_mib'], '.0f')} | {_f(r.get('time_vs_elora'))} | "
            f"{_f(r.get('time_vs_lora'))} | {_f(paper)} |"
        )
    for t in report["targets"]:
        verdict = "n/a" if t["pass"] is None else ("PASS" if t["pass"] else "FAIL")
        lines.append(f"\n- {verdict}: {t['text']} = {_f(t['value'], '.3f')} (limit {t['limit']})")
    return [*lines, ""]


def epoch_section(reports: dict[str, dict[str, Any]]) -> list[str]:
    if not reports:
        return ["## Epoch bench", "", "No epoch bench finished (logs/).", ""]
    first = next(iter(reports.values()))
    lines = [
        f"## Epoch bench: one {first['task'].upper()} epoch on {first['model']}",
        "",
        "Training seconds of one epoch (evaluation excluded), each padding scheme relative to ELoRA's: the "
        "whole-run ratio closest to the paper's Fig. 3.",
        "",
        "| method | dynamic s | padded to 256 s | padded / dynamic | dynamic vs ELoRA | padded vs ELoRA | paper |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    elora = reports.get("elora", {}).get("runs", {})
    for method, rep in reports.items():
        runs = rep["runs"]
        ratio = {v: runs[v]["seconds_per_epoch"] / elora[v]["seconds_per_epoch"] if elora else None for v in runs}
        lines.append(
            f"| {method} | {runs['dynamic']['seconds_per_epoch']:.1f} | {runs['padded']['seconds_per_epoch']:.1f} | "
            f"{rep['speedup']:.2f} | {_f(ratio['dynamic'])} | {_f(ratio['padded'])} | "
            f"{_f(PAPER_VS_ELORA.get(method))} |"
        )
    return [*lines, ""]


def study_section(runs: Path, plan: Plan, outcomes: dict[str, str]) -> list[str]:
    lines = [
        f"## Study: {plan.study_model} (`model.name={plan.study_name}`), {plan.workers} trainings at once",
        "",
        f"Results in `{runs.name}/` (never mixed with the CPU protocol's `runs/`); tables and figures in "
        f"[{plan.study_name}/README.md]({plan.study_name}/README.md). Overrides: `{' '.join(plan.study_overrides)}`.",
    ]
    if plan.study_name.endswith("-fp16"):
        lines += [
            "",
            "**Half-precision-loaded MiniLM**: its weights travelled as float16 (the 91 MB float32 package is over a "
            f"device call's 64 MiB) and train as float32; every result here was trained from float16-rounded "
            f"weights, hence the model name `{plan.study_name}` in each result.json and in the report.",
        ]
    lines += ["", "| task | method | seed | outcome | train s | best |", "|---|---|---:|---|---:|---|"]
    for task, method, seed in study_cells(plan):
        result = completed_result(runs, plan.study_name, task, method, seed)
        outcome = outcomes.get(f"study {task}-{method}-seed{seed}", "not run")
        best = seconds = ""
        if result:
            metric = result.metrics.selection_metric
            best = f"{metric} {_f(result.metrics.best.numbers.get(metric), '.4f')}"
            seconds = f"{result.runtime.train_seconds:.0f}"
        lines.append(f"| {task} | {method} | {seed} | {outcome} | {seconds} | {best} |")
    return [*lines, ""]


def write_summary(out: Path, runs: Path, plan: Plan, steps: list[dict], elapsed: float, limit: float) -> str:
    env = _load(out / "env.json")
    dry = plan.device == "cpu"
    lines = [
        "# GPU check" + (" (DRY RUN: CPU, tiny sizes; the numbers say nothing about speed)" if dry else ""),
        "",
        f"`python -m tools.gpu_check{' --dry-run' if dry else ''}`: {elapsed:.0f} s of its {limit:.0f} s limit. "
        "README.md in the repository's root ('Running at scale') says how to read this.",
        "",
        *env_section(env),
    ]
    benches = sorted((out / "bench").glob("*.json"), key=lambda p: ("bf16" in p.stem, p.stem))
    for path in benches:
        report = _load(path)
        if report:
            lines += speed_section(report, path.stem)
    epochs = {m: _load(out / "epoch" / m / f) for m in plan.epoch_methods for f in _names(out / "epoch" / m)}
    lines += epoch_section({m: r for m, r in epochs.items() if r})
    outcomes = {s["step"]: s["outcome"] for s in steps}
    lines += study_section(runs, plan, outcomes)
    lines += ["## Steps", "", "| step | outcome | seconds |", "|---|---|---:|"]
    lines += [f"| {s['step']} | {s['outcome']} | {_f(s['seconds'], '.0f')} |" for s in steps]
    text = "\n".join(lines) + "\n"
    (out / "README.md").write_text(text)
    return text


def _names(folder: Path) -> list[str]:
    return [p.name for p in sorted(folder.glob("epoch-*.json"))]


def main(argv: list[str] | None = None) -> int:
    """Regenerate README.md from a bundle's folders: <out> <runs> [--dry-run]."""
    argv = sys.argv[1:] if argv is None else argv
    out, runs = Path(argv[0]), Path(argv[1])
    steps = _load(out / "steps.json") or {"limit": 0, "elapsed": 0, "steps": []}
    plan = DRY_RUN if "--dry-run" in argv else GPU
    print(write_summary(out, runs, plan, steps["steps"], steps["elapsed"], steps["limit"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
