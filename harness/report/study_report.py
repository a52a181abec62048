"""The report of a study that fixes its own protocol (conf/study/<name>.yaml), apart from the model
reports: the runs of its table stages, under both protocols, and its grid's rule.

    python -m harness.report --study conf/study/minilm-paper.yaml --out reports/minilm-paper-budget

- **The cells are the study's.** Each table stage's runs as the study tool trains them
  (harness/studies/table_rates.py): at the grid's rates, or at the rate the fallback rule moved a cell to. A run
  at a rate the rule left behind stays on disk and out of the tables; nothing else under the same
  runs_dir counts.
- **Held-out protocol, the primary table:** each run's own best epoch, chosen on the selection half
  and scored on the other half (its result.json). **Paper protocol:** the epoch chosen and scored on
  the whole validation split, read back from the kept predictions (report/protocols.py).
- **The grid:** each method's rates, their selection scores and the rule's verdict, computed by the
  code the study tool chose with, so the report and the tool cannot disagree.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from harness.inputs.tasks import TaskSpec
from harness.report import render
from harness.report.aggregate import completed, paper_task_order
from harness.report.bootstrap import ScoreFn, paired_bootstrap
from harness.report.build import method_runs, model_tables
from harness.report.figures import all_figures
from harness.report.load import RunRecord, parse_result
from harness.report.paper import method_label, method_sort_key, task_title
from harness.report.protocols import HELDOUT, PAPER, protocol_score, score
from harness.report.readme import readme
from harness.report.render import MISSING, Table
from harness.storage.result_schema import COMPLETED, EpochRecord
from harness.storage.results import RESULT_FILE
from harness.studies.finished_runs import run_dir_of
from harness.studies.grid_scores import grid_scores
from harness.studies.grids import grid_outcome
from harness.studies.stages import stage_runs
from harness.studies.table_stages import planned_runs

log = logging.getLogger(__name__)

HEADLINE_PAIRS = (("aflora", "lora"), ("aflora", "elora"))  # the paper's two claims against other methods

Moves = dict[tuple[str, str], float]  # (method, task) -> the rate the fallback rule moved the cell to


def table_runs(study: DictConfig) -> tuple[list[RunRecord], Moves]:
    """Every result file of the study's table stages (those with ``methods``, and those that add seeds
    to one: ``of``), each labelled by its method alone (a cell's rate is the study's, not another
    method), and the fallback's moves."""
    runs: list[RunRecord] = []
    moves: Moves = {}
    for name, stage in study.stages.items():
        if "methods" not in stage and not stage.get("of"):
            continue
        planned, moved = planned_runs(name, stage, study)
        moves.update(moved)
        for run in planned:
            found = run_dir_of(run.overrides)
            if found is None or not (found[0] / RESULT_FILE).is_file():
                continue
            loaded = parse_result(found[0] / RESULT_FILE)
            loaded.method, loaded.variant = str(run.value("method")), ""
            runs.append(loaded)
    return runs, moves


def _task_spec(run: RunRecord) -> TaskSpec:
    config = run.result.config
    return TaskSpec.from_config(OmegaConf.create(config["task"]), config["data"]["protocol"])


def under_paper_protocol(runs: list[RunRecord]) -> list[RunRecord]:
    """The runs with the best epoch the paper protocol chooses (on the whole validation split, scored
    there) in place of their own, from their kept predictions; other runs as they are."""
    chosen = []
    for run in runs:
        if run.status != COMPLETED:
            chosen.append(run)
            continue
        paper = protocol_score(run.path.parent, _task_spec(run), PAPER)
        best = EpochRecord(epoch=paper.epoch, numbers={k: v / 100 for k, v in paper.reported.items()})
        chosen.append(replace(run, result=replace(run.result, metrics=replace(run.result.metrics, best=best))))
    return chosen


def _task_score(spec: TaskSpec, metrics: tuple[str, ...] | list[str]) -> ScoreFn:
    """The GLUE table's task score (the mean of its column's metrics, in percent) of some predictions."""

    def task_score(predictions: np.ndarray, labels: np.ndarray) -> float:
        return float(np.mean(list(score(spec, predictions, labels, metrics).values())))

    return task_score


def bootstrap_table(runs: list[RunRecord], model: str) -> Table:
    """AFLoRA against LoRA and ELoRA per task on the reported half: an example-level paired bootstrap
    over the seeds both ran (report/bootstrap.py), each run at its held-out epoch."""
    done = completed(runs)
    cells: dict[str, list[dict[str, str]]] = {"md": [], "tex": []}
    csv = []
    for ours, other in HEADLINE_PAIRS:
        for task in paper_task_order({r.task for r in done}):
            first = {r.seed: r for r in done if r.task == task and r.method == ours}
            second = {r.seed: r for r in done if r.task == task and r.method == other}
            seeds = sorted(first.keys() & second.keys())
            if not seeds:
                continue
            spec, metrics = _task_spec(first[seeds[0]]), first[seeds[0]].column.metrics
            a = [protocol_score(first[s].path.parent, spec, HELDOUT) for s in seeds]
            b = [protocol_score(second[s].path.parent, spec, HELDOUT) for s in seeds]
            diff = paired_bootstrap(
                [p.predictions for p in a], [p.predictions for p in b], a[0].labels, _task_score(spec, metrics)
            )
            for fmt in ("md", "tex"):
                cells[fmt].append(
                    {
                        "Comparison": render.escape(f"{method_label(ours)} − {method_label(other)}", fmt),
                        "Task": task_title(task),
                        "Difference": render.num(diff.difference, fmt),
                        "95% interval": f"[{render.num(diff.low, fmt)}, {render.num(diff.high, fmt)}]",
                        "Resamples at or below 0": render.num(100 * diff.share_at_or_below_zero, fmt, digits=1) + "%",
                        "Seeds": str(len(seeds)),
                    }
                )
            csv.append(
                {
                    "method": ours,
                    "other": other,
                    "task": task,
                    "difference": diff.difference,
                    "low": diff.low,
                    "high": diff.high,
                    "share_at_or_below_zero": diff.share_at_or_below_zero,
                    "resamples": diff.resamples,
                    "seeds": len(seeds),
                }
            )
    notes = [
        f"Model: `{model}`. The task score on the reported half of the validation split, each run at the "
        "epoch its selection half chose, in points. Every resample draws the reported examples with "
        "replacement, the same draw for both methods and all their seeds; a method's score on it is the "
        "mean over its seeds. Percentile interval; the last columns say how often the first method did not "
        "win and over how many seeds.",
        "The t interval over seeds (the paired comparisons) says how much a verdict rests on the seeds; this "
        "one, how much it rests on which examples the validation split holds.",
    ]
    return Table.from_rows("bootstrap_comparisons", f"Example-level paired bootstrap ({model})", cells, csv, notes)


def _rate_cell(
    rate: float, by_task: dict[str, float], tasks: list[str], fmt: str, chosen: bool, moot: list[str]
) -> str:
    """``rate: mean (task score, ...)``; a rate not run on every task yet has no mean, and a task its
    collapse elsewhere made moot reads "not run"."""

    def task_score(task: str) -> str:
        if task in by_task:
            return render.num(by_task[task], fmt)
        return "not run" if task in moot else MISSING[fmt]

    parts = [f"{task_title(t)} {task_score(t)}" for t in tasks]
    complete = all(t in by_task for t in tasks)
    mean = render.num(sum(by_task[t] for t in tasks) / len(tasks), fmt, is_best=chosen) if complete else MISSING[fmt]
    return f"{rate:g}: {mean} ({', '.join(parts)})"


def _edge(chosen: float, rates: list[float]) -> str:
    return "yes" if chosen in (rates[0], rates[-1]) else "no"


def grid_rule_table(study: DictConfig) -> Table | None:
    """Each grid stage's methods: every rate with its selection scores, the rate the rule chose, and
    whether the choice is interior (harness/studies/grids.py, harness/studies/rate_choice.py)."""
    overrides = tuple(study.get("overrides") or ())
    cells: dict[str, list[dict[str, str]]] = {"md": [], "tex": []}
    csv = []
    for name, stage in study.stages.items():
        if "lr" not in stage:
            continue
        rates, choices = grid_outcome(name, stage, study)
        tasks = list(stage.tasks)
        scores = grid_scores(
            stage_runs(name, stage, study.model, list(study.seeds), overrides, rates), study.get("score_metric")
        )
        for method in sorted(rates, key=method_sort_key):
            choice = choices.get(method)
            chosen = choice.chosen if choice is not None and choice.extend_to is None else None
            by_rate = scores.get(method, {})
            for fmt in ("md", "tex"):
                cells[fmt].append(
                    {
                        "Grid": name,
                        "Method": render.escape(method_label(method), fmt),
                        "train.lr: mean selection score (per task)": "; ".join(
                            _rate_cell(
                                r,
                                by_rate.get(r, {}),
                                tasks,
                                fmt,
                                r == chosen,
                                choice.unneeded.get(r, []) if choice else [],
                            )
                            for r in rates[method]
                        ),
                        "Collapsed": ", ".join(
                            f"{r:g} on {'/'.join(task_title(t) for t in ts)}"
                            for r, ts in sorted((choice.collapsed if choice else {}).items())
                        )
                        or "none",
                        "Chosen": MISSING[fmt] if chosen is None else f"{chosen:g}",
                        "At an edge": MISSING[fmt] if chosen is None else _edge(chosen, rates[method]),
                    }
                )
            for rate in rates[method]:
                for task in tasks:
                    csv.append(
                        {
                            "grid": name,
                            "method": method,
                            "lr": rate,
                            "task": task,
                            "selection_score": by_rate.get(rate, {}).get(task, math.nan),
                            "collapsed": bool(choice and task in choice.collapsed.get(rate, [])),
                            "chosen": rate == chosen,
                        }
                    )
    if not csv:
        return None
    scored_on = "".join(
        f" (on {task_title(task)}: {metric}, the epoch still chosen on the task's selection metric)"
        for task, metric in (study.get("score_metric") or {}).items()
    )
    notes = [
        f"Model: `{study.model}`. A run's selection score: its selection-half metric at the epoch that half "
        f"chose{scored_on}, in percent; a rate's, the mean over the grid's tasks (in bold: the rate chosen). "
        "A rate with a run at or below the probe's on the same task is collapsed and not eligible; a choice at "
        "the grid's edge extended the grid by one rate until it was interior; a collapsed rate's other runs are not "
        "run (amendment 3). — : not judged yet (a rate still running).",
    ]
    return Table.from_rows("lr_rule", f"Learning rates by the study's rule ({study.model})", cells, csv, notes)


def fallback_notes(moves: Moves) -> list[str]:
    return [
        f"{method_label(m)} on {task_title(t)} trains every seed at {rate:g}: its seed-1 run at the grid's rate "
        "collapsed (the fallback rule)."
        for (m, t), rate in sorted(moves.items())
    ]


def build_study_report(study_path: Path, out_dir: Path, command: str) -> list[Path]:
    """Write ``out_dir``: the tables (md, csv, tex), the figures and a README, from the study's runs."""
    study = OmegaConf.load(study_path)
    runs, moves = table_runs(study)
    model = str(study.model)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = model_tables(runs, model)
    paper = model_tables(under_paper_protocol(runs), model)["glue_table"]
    tables["glue_table_paper_protocol"] = replace(
        paper, name="glue_table_paper_protocol", title=f"GLUE validation results, paper protocol ({model})"
    )
    tables["bootstrap_comparisons"] = bootstrap_table(runs, model)
    tables["glue_table"].notes.extend(fallback_notes(moves))
    rule = grid_rule_table(study)
    if rule is not None:
        tables["lr_rule"] = rule
    paths = [p for t in tables.values() for p in t.write(out_dir)]
    figures = all_figures(method_runs(runs), model, out_dir / "figures")
    readme_path = out_dir / "README.md"
    heading = f"AFLoRA reproduction report: {model}, the study {study_path.as_posix()}"
    readme_path.write_text(readme(model, runs, tables, figures, out_dir, command, heading), encoding="utf-8")
    log.info("%s: wrote %d tables, %d figures", study_path, len(tables), len(figures))
    return [*paths, *figures, readme_path]
