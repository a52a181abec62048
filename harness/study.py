"""A study: an ordered list of runs of ``run.py``, N at a time, each with cores / N torch threads.

    python -m harness.study conf/study/minilm.yaml [--stage grid] [--jobs 2] [--dry-run | --status]

Runs are started in the study's order (stage by stage, seed 1 of every cell first), so a study
cut short still has whole seeds. ``run.py`` skips a run whose
result is complete and resumes one with a checkpoint, so rerunning the same command continues
where it stopped. Each run's output goes to ``<logs>/<run>.log``; the exit code is 1 when any run
failed, and the failed runs are listed. ``--status`` says where each run stands, while it trains.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from harness.config.compose import run_config
from harness.studies.finished_runs import is_finished, run_dir_of
from harness.studies.grid_scores import grid_scores, selection_score
from harness.studies.pool import REPO, Run, RunSource, run_all
from harness.studies.progress import status_lines
from harness.studies.rate_choice import RateChoice, choose_rate, fallback_rate


def _run(study_overrides: tuple[str, ...], model: str, task: str, method: str, seed: int, *extra: str) -> Run:
    return Run((f"task={task}", f"model={model}", f"method={method}", f"seed={seed}", *study_overrides, *extra))


def grid_rates(stage: DictConfig, extended: Mapping[str, list[float]] | None = None) -> dict[str, list[float]]:
    """Each method's rates: the stage's, plus those an edge extension added (harness/studies/rate_choice.py)."""
    extended = extended or {}
    return {m: sorted({*map(float, rates), *extended.get(m, [])}) for m, rates in stage.lr.items()}


def stage_runs(
    name: str,
    stage: DictConfig,
    model: str,
    default_seeds: list[int],
    study_overrides: tuple[str, ...] = (),
    rates: Mapping[str, list[float]] | None = None,
    fallback: Mapping[tuple[str, str], float] | None = None,
) -> list[Run]:
    """The runs of one stage, seed-major: seed 1 of every (task, method[, lr]) before seed 2.

    A stage's ``runs_dir`` (if any) and the study's ``overrides`` go on every run's command line; a
    learning-rate grid (``lr``) gives each value its own ``train.lr=<value>/`` folder, and so does
    a (method, task) the fallback rule moved to another rate (``fallback``, see ``fallback_rates``).
    """
    fallback = fallback or {}
    seeds = list(stage.get("seeds") or default_seeds)
    extra = (*study_overrides, *(stage.get("overrides") or ()))
    where = (f"runs_dir={stage.runs_dir}",) if stage.get("runs_dir") else ()
    runs = []
    for seed in seeds:
        for task in stage.tasks:
            if "lr" in stage:
                for method, values in (rates or grid_rates(stage)).items():
                    runs += [_run(extra, model, task, method, seed, f"train.lr={lr}", *where) for lr in values]
            else:
                for method in stage.methods:
                    moved = (f"train.lr={fallback[method, task]}",) if (method, task) in fallback else ()
                    runs.append(_run(extra, model, task, method, seed, *moved, *where))
    return runs


def study_runs(study: DictConfig, only: str | None = None) -> list[Run]:
    """Every stage's runs in order, as the finished runs stand: a grid that extends itself (``extend:
    true``) with every rate they call for so far, a table stage's cells where the fallback rule has
    moved them so far."""
    if only is not None and only not in study.stages:
        raise SystemExit(f"--stage {only!r} is not a stage of this study (stages: {', '.join(study.stages)})")
    overrides = tuple(study.get("overrides") or ())
    runs = []
    for name in [only] if only else list(study.stages):
        stage = study.stages[name]
        if stage.get("extend"):
            runs += stage_runs(
                name, stage, study.model, list(study.seeds), overrides, grid_outcome(name, stage, study)[0]
            )
        else:
            runs += runs_after_fallback(name, stage, study)[0]
    return runs


def grid_choices(stage: DictConfig, runs: list[Run], rates: Mapping[str, list[float]]) -> dict[str, RateChoice]:
    """Each method's choice by the rule (harness/studies/rate_choice.py). With a ``probe``, the probe is judged
    first and alone; the others wait for its choice, which is their collapse floor."""
    tasks = list(stage.tasks)
    scores = grid_scores(runs)
    full = {m: {r: scores.get(m, {}).get(r, {}) for r in rates[m]} for m in rates}
    probe = stage.get("probe")
    choices = {}
    if probe:
        choices[probe] = choose_rate(full[probe], tasks)
        if choices[probe].chosen is None or choices[probe].extend_to is not None:
            return choices
    floor = dict(full[probe][choices[probe].chosen]) if probe else None
    for method in rates:
        if method != probe:
            choices[method] = choose_rate(full[method], tasks, floor)
    return choices


def describe(method: str, choice: RateChoice) -> str:
    scores = ", ".join(
        f"{rate:g}: {score:.2f}"
        + (f" (collapsed on {'/'.join(choice.collapsed[rate])})" if rate in choice.collapsed else "")
        for rate, score in sorted(choice.mean_scores.items())
    )
    if choice.extend_to is not None:
        verdict = (
            f"at an edge: extending to {choice.extend_to:g}"
            if choice.chosen
            else f"none eligible: extending to {choice.extend_to:g}"
        )
    elif choice.chosen is None:
        verdict = "not judged yet"
    else:
        verdict = f"chose {choice.chosen:g}"
    return f"  {method}: {verdict} [{scores}]"


def grid_outcome(
    name: str, stage: DictConfig, study: DictConfig
) -> tuple[dict[str, list[float]], dict[str, RateChoice]]:
    """A grid's rates and each method's choice as its finished runs stand, with every extension
    those runs call for (``extend: true``); a method whose newest rates have not finished is not
    judged yet. The study tool runs a grid with it, and a table stage takes its rates from it."""
    overrides = tuple(study.get("overrides") or ())
    extended: dict[str, list[float]] = {}
    while True:
        rates = grid_rates(stage, extended)
        choices = grid_choices(stage, stage_runs(name, stage, study.model, list(study.seeds), overrides, rates), rates)
        more = {m: c.extend_to for m, c in choices.items() if c.extend_to is not None}
        if not more or not stage.get("extend"):
            return rates, choices
        for method, rate in more.items():
            extended.setdefault(method, []).append(rate)


def run_grid(
    name: str, stage: DictConfig, study: DictConfig, keep: Callable[[Run], bool], pool: Callable[[RunSource], list[Run]]
) -> list[Run]:
    """Run a learning-rate grid; with ``extend: true``, grow it past any chosen rate at its edge
    until every choice is interior (conf/protocol/minilm-paper/README.md). The pool asks for the
    grid's runs again as each one ends, so a rate the finished runs call for starts in the next free
    slot. A failed run leaves its method unjudged; the others go on. Returns the failed runs."""
    overrides = tuple(study.get("overrides") or ())

    def runs_as_they_stand() -> list[Run]:
        rates, _ = grid_outcome(name, stage, study)
        return [r for r in stage_runs(name, stage, study.model, list(study.seeds), overrides, rates) if keep(r)]

    failed = pool(runs_as_they_stand)
    if not failed:  # every choice the finished runs allow is made
        _, choices = grid_outcome(name, stage, study)
        print(
            f"grid {name!r}, by the rule of the study's protocol:",
            *(describe(m, c) for m, c in choices.items()),
            sep="\n",
            flush=True,
        )
    return failed


Cell = tuple[str, str]  # (method, task): one row of a table stage, its seeds alike


def fallback_rates(
    stage: DictConfig, study: DictConfig, runs: list[Run]
) -> tuple[dict[Cell, float], dict[Cell, list[Run]]]:
    """(method, task) -> the rate the fallback rule moves that cell to, for a stage with
    ``fallback: {tasks: [...], probe: <method>}``: a method whose first-seed run at the grid's choice
    collapsed on one of those tasks (at or below the probe's first-seed run there) trains there at
    the grid's next lower rate, every seed (conf/protocol/minilm-paper/README.md, "Fallback").
    ``runs`` are the stage's runs at the grid's choices. Returns the moves, and the cells not decided
    yet, each with the first-seed runs (the method's or the probe's) it waits for."""
    rule = stage.get("fallback")
    if not rule:
        return {}, {}
    rates, choices = grid_outcome(stage.rates_from, study.stages[stage.rates_from], study)
    first_seed = str(min(stage.get("seeds") or study.seeds))
    moved, undecided = {}, {}
    for run in runs:
        method, task = run.value("method"), run.value("task")
        if run.value("seed") != first_seed or task not in rule.tasks or method == rule.probe or method not in rates:
            continue
        # The probe's run on the same command line: the same task, seed, budget and runs_dir.
        probe = Run(tuple(f"method={rule.probe}" if o.startswith("method=") else o for o in run.overrides))
        score, floor = selection_score(run), selection_score(probe)
        if score is None or floor is None or choices[method].chosen is None or choices[method].extend_to is not None:
            undecided[method, task] = [r for r, got in ((run, score), (probe, floor)) if got is None]
            continue
        lower = fallback_rate(score, floor, choices[method].chosen, rates[method])
        if lower is not None:
            moved[method, task] = lower
    return moved, undecided


def runs_after_fallback(
    name: str, stage: DictConfig, study: DictConfig
) -> tuple[list[Run], dict[Cell, float], dict[Cell, list[Run]]]:
    """A table stage's runs as its finished first-seed runs stand: every seed of every cell, each at
    the rate the fallback rule gives it so far (a cell it has not decided yet at the grid's choice);
    the moves; and the undecided cells, as ``fallback_rates`` returns them. Without a ``fallback``,
    the stage's runs, no moves, nothing undecided."""
    overrides, seeds = tuple(study.get("overrides") or ()), list(study.seeds)
    planned = stage_runs(name, stage, study.model, seeds, overrides)
    moved, undecided = fallback_rates(stage, study, planned)
    return stage_runs(name, stage, study.model, seeds, overrides, fallback=moved), moved, undecided


def check_rates_chosen(stage: DictConfig, study: DictConfig, runs: list[Run]) -> None:
    """A stage with ``rates_from: <grid stage>`` trains each method at its grid's choice, or not at
    all; ``runs`` are the stage's runs as written (the fallback rule moves a cell from that choice only
    once its first seed has run there)."""
    grid_name = stage.get("rates_from")
    if not grid_name:
        return
    rates, choices = grid_outcome(grid_name, study.stages[grid_name], study)
    for run in runs:
        method = run.value("method")
        if method not in rates:
            continue  # not a grid method (an ablation trains at its base method's rate)
        choice = choices.get(method)
        if choice is None or choice.chosen is None or choice.extend_to is not None:
            raise SystemExit(
                f"error: the grid {grid_name!r} has not chosen {method}'s rate yet: run --stage {grid_name} first"
            )
        lr = run_config(run.overrides).train.lr
        if float(lr) != choice.chosen:
            raise SystemExit(
                f"error: {method} would train at train.lr={lr} but the grid {grid_name!r} chose {choice.chosen:g}: "
                "set it in the method's tuning file"
            )


def emulated_bf16_runs(runs: list[Run]) -> list[Run]:
    """The runs not finished yet that would train in bf16 on this CPU where it has no bf16
    instructions (harness/execution/cpu_bf16.py): a study of them would take days instead of hours.
    The precision is read from the composition the finished-run check keeps; a run's device (not
    part of that record) is composed again only on such a CPU."""

    def in_bf16(run: Run) -> bool:
        found = run_dir_of(run.overrides)
        return found is not None and found[1].get("train.precision") == "bf16"

    bf16 = [r for r in runs if in_bf16(r) and not is_finished(r.overrides)]
    if not bf16:
        return []
    import torch  # only now: the study tool otherwise never imports torch

    from harness.execution.cpu_bf16 import emulated_bf16

    if not emulated_bf16():
        return []
    on_cpu = ("cpu", "auto") if not torch.cuda.is_available() else ("cpu",)
    return [r for r in bf16 if run_config(r.overrides).train.device in on_cpu]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", type=Path, help="a study file, e.g. conf/study/minilm.yaml")
    parser.add_argument("--stage", default=None, help="run only this stage (default: all, in order)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (default 2); each gets cores // jobs threads")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads per run (default: cores // jobs; lower it when another study shares the machine)",
    )
    parser.add_argument("--logs", type=Path, default=REPO / "logs" / "study", help="one log file per run here")
    parser.add_argument(
        "--methods", default=None, help="comma-separated: only these methods' runs (e.g. the ones whose rates are set)"
    )
    parser.add_argument("--tasks", default=None, help="comma-separated: only these tasks' runs")
    parser.add_argument("--dry-run", action="store_true", help="list the runs in order and exit")
    parser.add_argument(
        "--status",
        action="store_true",
        help="list the runs in order with where each stands (finished, epochs saved, failed, refused, not started)"
        " and exit",
    )
    parser.add_argument(
        "--allow-emulated-bf16",
        action="store_true",
        help="start bf16 runs on a CPU without bf16 instructions, where PyTorch emulates it (tens of times slower)",
    )
    args = parser.parse_args(argv)
    if not args.study.is_file():
        parser.error(f"no study file {args.study}")
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    study = OmegaConf.load(args.study)

    def keep(run: Run) -> bool:
        return (not args.methods or run.value("method") in args.methods.split(",")) and (
            not args.tasks or run.value("task") in args.tasks.split(",")
        )

    if args.dry_run:
        print("\n".join(" ".join(run.overrides) for run in study_runs(study, args.stage) if keep(run)))
        return 0
    if args.status:
        print("\n".join(status_lines([run for run in study_runs(study, args.stage) if keep(run)])))
        return 0

    def pool(runs: RunSource) -> list[Run]:
        listed = runs() if callable(runs) else runs
        if not args.allow_emulated_bf16 and (slow := emulated_bf16_runs(listed)):
            from harness.execution.cpu_bf16 import EMULATED_BF16

            parser.exit(
                2, f"error: {len(slow)} runs to train would use {EMULATED_BF16}; --allow-emulated-bf16 starts them\n"
            )
        return run_all(runs, args.jobs, args.logs / args.study.stem, args.threads)

    failed = run_study(study, args.stage, keep, pool)
    return 1 if failed else 0


def ready_runs(
    name: str, stage: DictConfig, study: DictConfig, keep: Callable[[Run], bool]
) -> tuple[list[Run], dict[Cell, float], list[Run]]:
    """The stage's runs (those ``keep`` keeps) that may start as its finished runs stand: every
    first-seed run, and a cell's later seeds once the fallback rule has decided their rate. Also the
    moves, and the unfinished first-seed runs that held-back seeds wait for."""
    runs, moved, undecided = runs_after_fallback(name, stage, study)
    first_seed = str(min(stage.get("seeds") or study.seeds))
    ready, waiting_on = [], []
    for run in filter(keep, runs):
        waits = undecided.get((run.value("method"), run.value("task")))
        if run.value("seed") == first_seed or waits is None:
            ready.append(run)
        else:
            waiting_on += [r for r in waits if r not in waiting_on]
    return ready, moved, waiting_on


def run_study(
    study: DictConfig, only: str | None, keep: Callable[[Run], bool], pool: Callable[[RunSource], list[Run]]
) -> list[Run]:
    """Every stage in order. A self-extending grid runs alone, since the stages after it need its
    choices; the stages between grids share one pool, which asks for their runs again as each run
    ends. So a stage with a ``fallback`` hands out a cell's later seeds as soon as the cell's first
    seed (and the probe's) has decided their rate, beside the first seed's last runs."""
    if only is not None and only not in study.stages:
        raise SystemExit(f"--stage {only!r} is not a stage of this study (stages: {', '.join(study.stages)})")
    overrides = tuple(study.get("overrides") or ())
    failed: list[Run] = []
    sharing: list[str] = []  # the stages since the last grid, for one pool
    announced: set[tuple[str, Cell]] = set()

    def runs_as_they_stand() -> list[Run]:
        listed = []
        for name in sharing:
            ready, moved, _ = ready_runs(name, study.stages[name], study, keep)
            for (method, task), rate in moved.items():
                if (name, (method, task)) not in announced:
                    announced.add((name, (method, task)))
                    print(f"fallback: {method} collapsed on {task} at the grid's rate: every seed trains at {rate:g}")
            listed += ready
        return listed

    def run_shared() -> list[Run]:
        failed_here = pool(runs_as_they_stand) if sharing else []
        waiting_on = [r for name in sharing for r in ready_runs(name, study.stages[name], study, keep)[2]]
        sharing.clear()
        if waiting_on and not failed_here:  # a --methods or --tasks filter left out a run the rule reads
            needed = " ".join(waiting_on[0].overrides)
            raise SystemExit(f"error: the fallback rule needs the finished run {needed}: run it first")
        if waiting_on:
            print("later seeds held back until these first-seed runs finish:", *(r.label for r in waiting_on))
        return failed_here

    for name in [only] if only else list(study.stages):
        stage = study.stages[name]
        if stage.get("extend"):
            failed += run_shared()
            failed += run_grid(name, stage, study, keep, pool)
            if failed:  # the stages after a grid need its choice
                return failed
            continue
        check_rates_chosen(
            stage, study, [r for r in stage_runs(name, stage, study.model, list(study.seeds), overrides) if keep(r)]
        )
        sharing.append(name)
    return failed + run_shared()


if __name__ == "__main__":
    sys.exit(main())
