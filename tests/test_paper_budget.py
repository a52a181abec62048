"""The paper-budget protocol's machinery (conf/protocol/minilm-paper/README.md): budget=paper, the
rate rule with its collapse clause and edge extension, and a run's kept predictions read back into
the held-out and paper protocols."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import DictConfig, OmegaConf
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score

from harness.config.budget import check_budget
from harness.core.errors import ConfigError
from harness.core.paths import REPO
from harness.execution import lifecycle
from harness.inputs.heldout import heldout_indices
from harness.inputs.tasks import TaskSpec
from harness.report.bootstrap import paired_bootstrap
from harness.report.protocols import HELDOUT, PAPER, protocol_score
from harness.report.study_report import grid_rule_table
from harness.storage.epoch_predictions import read_predictions
from harness.studies.finished_runs import run_dir_of
from harness.studies.grids import grid_outcome
from harness.studies.paired_interval import paired_difference
from harness.studies.pool import Run, RunSource
from harness.studies.rate_choice import choose_rate, fallback_rate, rate_beyond
from harness.studies.stages import stage_runs
from harness.study import run_study, study_runs
from harness.token_lengths import share_over
from tests.conftest import compose
from tests.glue_fixture import write_glue

# --- budget=paper ------------------------------------------------------------------------------


def test_budget_paper_gives_the_reference_schedule_to_every_method():
    for method, lr in (("aflora", 1e-2), ("lora", 2e-3), ("elora", 3e-2), ("head", 1e-1)):
        cfg = compose(["task=rte", "model=minilm", f"method={method}", "budget=paper"])
        assert (cfg.train.epochs, cfg.train.batch_size, cfg.train.warmup_ratio) == (20, 64, 0.06)
        assert cfg.train.max_train_samples is None and cfg.train.keep_predictions is True
        assert (cfg.data.protocol, cfg.data.max_seq_length) == ("heldout", 256)
        assert cfg.train.lr == lr  # the grid's centre until the grid chooses
    aflora = compose(["task=mrpc", "model=minilm", "method=aflora-frozen", "budget=paper"])
    assert (aflora.method.t_i, aflora.method.t_f, aflora.data.max_seq_length) == ("1 epoch", "14 epochs", 128)
    assert aflora.method.trainable_projections == "none"


def test_the_short_budget_is_the_default_and_unchanged():
    assert compose(["task=rte", "model=minilm", "method=aflora"]) == compose(
        ["task=rte", "model=minilm", "method=aflora", "budget=short"]
    )
    assert compose(["task=rte", "model=minilm", "method=aflora"]).train.epochs == 2


def test_a_budget_without_its_files_is_refused_naming_the_file():
    choices = {"budget": "paper", "model": "tiny-bert", "task": "rte", "method": "lora"}
    with pytest.raises(ConfigError, match="conf/protocol/tiny-bert-paper/rte.yaml"):
        check_budget({**choices, "protocol": "tiny-bert-paper/rte", "tuning": "tiny-bert-paper/lora"})
    with pytest.raises(ConfigError, match="conf/tuning/minilm-paper/vera.yaml"):
        check_budget({**choices, "model": "minilm", "protocol": "minilm-paper/rte", "tuning": "minilm-paper/vera"})
    check_budget({**choices, "budget": "short", "protocol": "tiny-bert/rte", "tuning": "tiny-bert/lora"})


def test_share_over_a_length_by_hand():
    assert share_over([10, 128, 129, 300], 128) == 0.5  # 128 itself fits
    assert share_over([10, 128, 129, 300], 256) == 0.25


# --- the rate rule -----------------------------------------------------------------------------


def test_rate_beyond_keeps_the_grids_ratio_to_one_significant_figure():
    assert rate_beyond(3e-2, 1e-2) == pytest.approx(9e-2)
    assert rate_beyond(5e-3, 2e-3) == pytest.approx(1e-2)  # 1.25e-2
    assert rate_beyond(1e-3, 2e-3) == pytest.approx(5e-4)
    assert rate_beyond(1e-1, 9e-2) == pytest.approx(0.11)  # one figure would round back onto the edge


TASKS = ["mrpc", "stsb"]


def test_the_best_mean_wins_and_an_interior_choice_asks_for_nothing():
    scores = {1e-3: {"mrpc": 80, "stsb": 70}, 2e-3: {"mrpc": 82, "stsb": 71}, 5e-3: {"mrpc": 85, "stsb": 60}}
    choice = choose_rate(scores, TASKS)
    assert choice.mean_scores == {1e-3: 75, 2e-3: 76.5, 5e-3: 72.5}
    assert (choice.chosen, choice.extend_to) == (2e-3, None)


def test_a_choice_at_either_edge_extends_that_way():
    top = choose_rate({1e-2: {"mrpc": 70, "stsb": 70}, 3e-2: {"mrpc": 80, "stsb": 80}}, TASKS)
    assert (top.chosen, top.extend_to) == (3e-2, pytest.approx(9e-2))
    low = choose_rate({1e-2: {"mrpc": 80, "stsb": 80}, 3e-2: {"mrpc": 70, "stsb": 70}}, TASKS)
    assert (low.chosen, low.extend_to) == (1e-2, pytest.approx(3e-3))  # 1e-2 * (1e-2 / 3e-2), one figure


def test_a_tie_goes_to_the_lower_rate():
    scores = {1e-3: {"mrpc": 70, "stsb": 70}, 2e-3: {"mrpc": 80, "stsb": 80}, 5e-3: {"mrpc": 80, "stsb": 80}}
    assert choose_rate(scores, TASKS).chosen == 2e-3


def test_a_rate_at_or_below_the_probe_on_any_task_is_not_eligible():
    scores = {1e-3: {"mrpc": 75, "stsb": 70}, 2e-3: {"mrpc": 81, "stsb": 70}, 5e-3: {"mrpc": 95, "stsb": 60}}
    probe = {"mrpc": 75.0, "stsb": 60.0}
    choice = choose_rate(scores, TASKS, probe)
    assert choice.collapsed == {1e-3: ["mrpc"], 5e-3: ["stsb"]}  # "at or below": equal to the probe collapses
    assert choice.mean_scores[5e-3] > choice.mean_scores[2e-3]  # the best mean, but not eligible
    assert choice.chosen == 2e-3
    assert choice.extend_to is None  # 2e-3 has a rate run on each side


def test_every_rate_collapsed_extends_downwards_and_an_unfinished_grid_decides_nothing():
    scores = {1e-2: {"mrpc": 50, "stsb": 10}, 3e-2: {"mrpc": 50, "stsb": 10}}
    choice = choose_rate(scores, TASKS, {"mrpc": 60, "stsb": 20})
    assert (choice.chosen, choice.extend_to) == (None, pytest.approx(3e-3))
    unfinished = choose_rate({1e-2: {"mrpc": 70}, 3e-2: {"mrpc": 70, "stsb": 30}}, TASKS, {"mrpc": 60, "stsb": 20})
    assert (unfinished.chosen, unfinished.extend_to) == (None, None)


def test_a_rate_collapsed_on_one_task_needs_none_of_its_other_runs():
    """Amendment 3: 5e-3 collapsed on MRPC, so no STS-B score can make it eligible; the choice among
    the other rates is made without that run, and is the one it would be whatever the run scored."""
    probe = {"mrpc": 60, "stsb": 20}
    scores = {1e-3: {"mrpc": 70, "stsb": 30}, 2e-3: {"mrpc": 80, "stsb": 40}, 5e-3: {"mrpc": 55}}
    choice = choose_rate(scores, TASKS, probe)
    assert (choice.collapsed, choice.unneeded) == ({5e-3: ["mrpc"]}, {5e-3: ["stsb"]})
    assert (choice.chosen, choice.extend_to) == (2e-3, None)
    for stsb in (0, 99):
        ran = choose_rate({**scores, 5e-3: {"mrpc": 55, "stsb": stsb}}, TASKS, probe)
        assert (ran.chosen, ran.extend_to, ran.unneeded) == (2e-3, None, {})
    every_rate_down = choose_rate({1e-2: {"mrpc": 50}, 3e-2: {"mrpc": 70, "stsb": 10}}, TASKS, probe)
    assert (every_rate_down.chosen, every_rate_down.extend_to) == (None, pytest.approx(3e-3))
    assert every_rate_down.unneeded == {1e-2: ["stsb"]}  # 3e-2 has all its scores: nothing to skip


def test_every_grid_of_the_paper_study_judges_its_methods_against_the_probe():
    """The collapse rule is the same for every method (conf/protocol/minilm-paper/README.md): each
    grid stage names the probe and runs it, so its other methods get the probe's score as their floor
    (``grid_choices`` judges no collapse without one), and at the same rates in every grid."""
    study = OmegaConf.load(REPO / "conf" / "study" / "minilm-paper.yaml")
    grids = [stage for stage in study.stages.values() if "lr" in stage]
    assert len(grids) == 2
    for stage in grids:
        assert stage.probe == "head" and list(stage.lr.head) == list(study.stages.grid.lr.head)
        assert len(stage.lr) > 1  # a method besides the probe


# --- the study tool extends a grid by itself ------------------------------------------------------


METRICS = ("f1", "pearson", "mcc", "accuracy")


def write_score(run: Run, score: float, reported: float | None = None, **by_metric: float) -> None:
    """The result.json a finished run would leave, as far as the study's rules read it: ``score`` for
    every selection-half metric but those ``by_metric`` gives (``accuracy_select=...``), and
    ``reported`` (else ``score``) for every metric of the other half."""
    run_dir, _ = run_dir_of(run.overrides)
    run_dir.mkdir(parents=True, exist_ok=True)
    on_reported_half = {m: score if reported is None else reported for m in METRICS}
    best = {**on_reported_half, **{f"{m}_select": score for m in METRICS}, **by_metric}
    selection_metric = {"mrpc": "f1", "stsb": "pearson", "cola": "mcc", "rte": "accuracy"}[run.value("task")]
    result = {"status": "completed", "metrics": {"selection_metric": selection_metric, "best": best}}
    (run_dir / "result.json").write_text(json.dumps(result))


def scoring_pool(
    score: Callable[[Run], float], calls: list[list[Run]], write: Callable[[Run], None] | None = None
) -> Callable[[RunSource], list[Run]]:
    """A stand-in for the study's pool, one slot: the first run listed and not run yet "finishes" at
    once with ``score(run)`` (or with what ``write`` writes for it). Handed a function, it asks it
    again after each run, as the real pool does when one ends, so a run it no longer lists never
    runs; each call records the runs listed for the first time then."""
    finish = write or (lambda run: write_score(run, score(run)))

    def pool(runs: RunSource) -> list[Run]:
        listed: set[Run] = set()
        ran: set[Run] = set()
        while todo := [r for r in (runs() if callable(runs) else runs) if r not in ran]:
            if new := [r for r in todo if r not in listed]:
                calls.append(new)
                listed.update(new)
            finish(todo[0])
            ran.add(todo[0])
        return []

    return pool


def test_the_study_grows_a_grid_until_every_choice_is_interior(tmp_path):
    """A fake pool writes each run's result: AFLoRA's score rises up to 9e-2 and falls after, so the
    grid [1e-2, 3e-2] must run 9e-2, then 0.3 (0.27 to one figure), and choose 9e-2; the probe is interior at once."""
    peak = {"aflora": 9e-2, "head": 1e-1}
    runs_handed: list[list[Run]] = []

    def score(run: Run) -> float:
        lr, method = float(run.value("train.lr")), run.value("method")
        return (0.6 if method == "aflora" else 0.3) - 0.1 * abs(np.log10(lr / peak[method]))

    study = OmegaConf.create(
        {
            "model": "minilm",
            "seeds": [1],
            "overrides": ["budget=paper"],
            "stages": {
                "grid": {
                    "tasks": ["mrpc"],
                    "runs_dir": str(tmp_path),
                    "extend": True,
                    "probe": "head",
                    "lr": {"head": [3e-2, 1e-1, 3e-1], "aflora": [1e-2, 3e-2]},
                }
            },
        }
    )
    written = ["head@0.03", "head@0.1", "head@0.3", "aflora@0.01", "aflora@0.03"]
    assert [f"{r.value('method')}@{r.value('train.lr')}" for r in study_runs(study)] == written  # --dry-run's list
    assert run_study(study, None, lambda run: True, scoring_pool(score, runs_handed)) == []
    # --dry-run lists the grid as its finished runs stand: with the rates they called for
    assert [f"{r.value('method')}@{r.value('train.lr')}" for r in study_runs(study)] == [
        *written,
        "aflora@0.09",
        "aflora@0.3",
    ]
    calls = [[f"{r.value('method')}@{r.value('train.lr')}/{r.value('task')}" for r in runs] for runs in runs_handed]
    # The grid as written, then each rate the finished runs call for, one at a time.
    assert calls == [
        ["head@0.03/mrpc", "head@0.1/mrpc", "head@0.3/mrpc", "aflora@0.01/mrpc", "aflora@0.03/mrpc"],
        ["aflora@0.09/mrpc"],
        ["aflora@0.3/mrpc"],
    ]


def test_a_grid_never_runs_what_a_collapse_made_moot_and_says_so(tmp_path, capsys):
    """Amendment 3: LoRA at 5e-3 scores under the probe on MRPC, so the study never hands over its
    STS-B run once the probe's choice is the floor (the pool asks again after every run), lists it no
    more, and chooses 2e-3 as it would have; the report's grid table reads "not run"."""

    def score(run: Run) -> float:
        lr, method, task = float(run.value("train.lr")), run.value("method"), run.value("task")
        if method == "head":
            return 0.3 - 0.1 * abs(np.log10(lr / 0.1))
        return {1e-3: 0.6, 2e-3: 0.7, 5e-3: 0.2 if task == "mrpc" else 0.9}[lr]

    grid = {
        "tasks": ["mrpc", "stsb"],
        "runs_dir": str(tmp_path),
        "extend": True,
        "probe": "head",
        "lr": {"head": [3e-2, 1e-1, 3e-1], "lora": [1e-3, 2e-3, 5e-3]},
    }
    study = OmegaConf.create({"model": "minilm", "seeds": [1], "overrides": ["budget=paper"], "stages": {"grid": grid}})
    handed: list[list[Run]] = []
    assert run_study(study, None, lambda run: True, scoring_pool(score, handed)) == []

    def names(runs: list[Run]) -> set[str]:
        return {f"{r.value('method')}@{r.value('train.lr')}/{r.value('task')}" for r in runs}

    as_written = stage_runs("grid", study.stages.grid, "minilm", [1], ("budget=paper",))
    ran = [r for r in as_written if (run_dir_of(r.overrides)[0] / "result.json").exists()]
    assert names(as_written) - names(ran) == {"lora@0.005/stsb"}  # listed at the start, then dropped unrun
    assert names(study_runs(study)) == names(ran)  # what --dry-run and --status list now
    choice = grid_outcome("grid", study.stages.grid, study)[1]["lora"]
    assert (choice.chosen, choice.extend_to, choice.unneeded) == (2e-3, None, {5e-3: ["stsb"]})
    assert "lora: chose 0.002 [0.001: 60.00, 0.002: 70.00, 0.005: — (collapsed on mrpc) (stsb not run)]" in (
        capsys.readouterr().out
    )
    lora_row = next(row for row in grid_rule_table(study).rows if "LoRA" in row["Method"]("md"))
    assert "0.005: — (MRPC 20.00, STS-B not run)" in lora_row["train.lr: mean selection score (per task)"]("md")
    assert lora_row["Collapsed"]("md") == "0.005 on MRPC"


def test_the_paper_study_scores_mrpc_rates_by_accuracy_at_the_epoch_f1_chose(tmp_path):
    """The protocol's "Selection score" names accuracy for MRPC (amendment 2): with the repository
    study's ``score_metric``, AFLoRA's rate is the one whose runs have the best selection-half
    accuracy, though another has the best F1, which each run chose its epoch on."""
    f1 = {3e-3: 0.80, 1e-2: 0.82, 3e-2: 0.85, 9e-2: 0.81}
    accuracy = {3e-3: 0.70, 1e-2: 0.76, 3e-2: 0.74, 9e-2: 0.72}
    stage = {
        "tasks": ["mrpc"],
        "runs_dir": str(tmp_path),
        "extend": True,
        "probe": "head",
        "lr": {"head": [3e-2, 1e-1, 3e-1], "aflora": sorted(f1)},
    }
    paper = OmegaConf.load(REPO / "conf" / "study" / "minilm-paper.yaml")
    study = OmegaConf.create(
        {"model": "minilm", "seeds": [1], "overrides": ["budget=paper"], "stages": {"grid": stage}}
    )
    for run in study_runs(study):
        lr = float(run.value("train.lr"))
        if run.value("method") == "head":  # the floor, best at 0.1: 0.6 by either metric
            write_score(run, 0.6 - abs(np.log10(lr / 0.1)) / 10)
        else:
            write_score(run, f1[lr], accuracy_select=accuracy[lr])
    assert grid_outcome("grid", study.stages.grid, study)[1]["aflora"].chosen == 3e-2  # by F1
    study.score_metric = paper.score_metric
    choice = grid_outcome("grid", study.stages.grid, study)[1]["aflora"]
    assert (choice.chosen, choice.extend_to) == (1e-2, None)
    assert choice.mean_scores == pytest.approx({r: 100 * a for r, a in accuracy.items()})


def fallback_study(tmp_path: Path) -> tuple[DictConfig, dict[str, list[float]], Callable[[Run], float]]:
    """A grid on MRPC that chooses each method's tuning-file rate at once, and a table on RTE and MRPC
    whose fallback judges RTE; the score function makes AFLoRA's RTE run at the chosen rate score
    under the probe's 0.5 there."""
    centre = {
        m: compose(["task=rte", "model=minilm", f"method={m}", "budget=paper"]).train.lr for m in ("head", "aflora")
    }
    grid = {m: [c / 2, c, 2 * c] for m, c in centre.items()}

    def score(run: Run) -> float:
        method, task = run.value("method"), run.value("task")
        lr = float(run.value("train.lr") or centre[method])
        if task == "rte" and method == "aflora":
            return 0.4 if lr == centre["aflora"] else 0.55  # at or under the probe's 0.5 at the chosen rate
        return (0.5 if method == "head" else 0.7) - 0.1 * abs(np.log2(lr / centre[method]))

    study = OmegaConf.create(
        {
            "model": "minilm",
            "seeds": [1, 2],
            "overrides": ["budget=paper"],
            "stages": {
                "grid": {
                    "tasks": ["mrpc"],
                    "seeds": [1],
                    "runs_dir": str(tmp_path / "grid"),
                    "extend": True,
                    "probe": "head",
                    "lr": grid,
                },
                "table": {
                    "tasks": ["rte", "mrpc"],
                    "methods": ["head", "aflora"],
                    "runs_dir": str(tmp_path / "table"),
                    "rates_from": "grid",
                    "fallback": {"tasks": ["rte"], "probe": "head"},
                },
            },
        }
    )
    return study, grid, score


def cells(runs: list[Run]) -> list[tuple[str | None, ...]]:
    return [(r.value("method"), r.value("task"), r.value("seed"), r.value("train.lr")) for r in runs]


def test_a_cell_whose_first_seed_collapses_outside_the_grid_trains_every_seed_one_rate_lower(tmp_path):
    """The fallback rule: on RTE, AFLoRA's seed 1 at the grid's choice scores under the probe's, so all
    its RTE seeds run at the grid's next lower rate, and nothing else moves. A cell's later seeds wait
    only for their own cell's first seed (and the probe's): the rest go to the pool at once."""
    study, grid, score = fallback_study(tmp_path)
    handed: list[list[Run]] = []
    assert run_study(study, None, lambda run: True, scoring_pool(score, handed)) == []
    grid_round, first_listing, after_aflora_rte = handed  # the grid chose at once: every choice is interior
    assert len(grid_round) == 6
    # None: the tuning file's rate, the grid's choice. AFLoRA's RTE seed 2 waits for its seed 1.
    assert cells(first_listing) == [
        ("head", "rte", "1", None),
        ("aflora", "rte", "1", None),
        ("head", "mrpc", "1", None),
        ("aflora", "mrpc", "1", None),
        ("head", "rte", "2", None),
        ("head", "mrpc", "2", None),
        ("aflora", "mrpc", "2", None),  # on a grid task the rule does not apply
    ]
    lower = str(grid["aflora"][0])
    assert cells(after_aflora_rte) == [("aflora", "rte", "1", lower), ("aflora", "rte", "2", lower)]
    # --dry-run and --status list the moved cell where it trains now
    assert ("aflora", "rte", "2", lower) in cells(study_runs(study))
    assert ("aflora", "rte", "2", None) not in cells(study_runs(study))


def test_the_fallback_refuses_to_end_while_a_filter_leaves_out_the_run_it_reads(tmp_path):
    """``--methods aflora``: the probe's RTE run is never started, so AFLoRA's later RTE seeds cannot
    be decided; the study says which run to train instead of ending as if it were done."""
    study, _, score = fallback_study(tmp_path)
    handed: list[list[Run]] = []
    assert run_study(study, "grid", lambda run: True, scoring_pool(score, handed)) == []
    with pytest.raises(SystemExit, match=r"need the finished run task=rte model=minilm method=head seed=1"):
        run_study(study, "table", lambda run: run.value("method") != "head", scoring_pool(score, handed))
    assert ("aflora", "rte", "2", None) not in cells([r for runs in handed for r in runs])


def test_a_first_seed_that_fails_holds_back_its_own_cell_and_the_others_go_on(tmp_path, capsys):
    """AFLoRA's RTE seed 1 fails: its seed 2 is never handed out, every other run is, and the study
    returns the failure and says what waits for it."""
    study, _, score = fallback_study(tmp_path)
    handed: list[list[Run]] = []
    assert run_study(study, "grid", lambda run: True, scoring_pool(score, handed)) == []
    is_aflora_rte = {("aflora", "rte")}.__contains__

    def failing_pool(runs: RunSource) -> list[Run]:
        ran, failed = set(), []
        while new := [r for r in runs() if r not in ran]:
            handed.append(new)
            for run in new:
                ran.add(run)
                if is_aflora_rte((run.value("method"), run.value("task"))):
                    failed.append(run)  # it leaves no result
                else:
                    write_score(run, score(run))
        return failed

    failed = run_study(study, "table", lambda run: True, failing_pool)
    assert cells(failed) == [("aflora", "rte", "1", None)]
    table_runs = cells(handed[-1])
    assert len(table_runs) == 7 and ("aflora", "rte", "2", None) not in table_runs
    assert "runs held back until these runs finish: rte_minilm_aflora_1" in capsys.readouterr().out


# --- seeds 4 and 5 where the table's seeds cannot tell two methods apart ---------------------------


def test_the_paired_interval_is_scipys_paired_t_interval():
    a = pd.Series({1: 71.2, 2: 69.8, 3: 73.1, 4: 70.0})
    b = pd.Series({1: 70.0, 2: 70.5, 3: 70.9, 5: 99.0})  # seed 4 and 5 unpaired: left out
    mean, low, high, n = paired_difference(a, b)
    reference = stats.ttest_rel(a.loc[[1, 2, 3]], b.loc[[1, 2, 3]]).confidence_interval(0.95)
    assert n == 3 and mean == pytest.approx((1.2 - 0.7 + 2.2) / 3)
    assert (low, high) == pytest.approx((reference.low, reference.high))


def test_more_seeds_go_to_both_methods_where_the_reported_halfs_interval_holds_zero(tmp_path):
    """On RTE (where the fallback moved AFLoRA a rate lower) AFLoRA − probe is 15, −5, 5 points on
    the reported half: its interval holds zero, so both run seeds 4 and 5, AFLoRA at its moved rate.
    On MRPC it is 20 points every seed there, though the selection half's differences straddle zero:
    no more seeds. Before the table has run, the stage alone names the run it needs."""
    study, grid, score = fallback_study(tmp_path)
    study.stages["more-seeds"] = {"of": "table", "seeds": [4, 5], "pairs": [["aflora", "head"]]}
    noise = {"1": 0.1, "2": -0.1, "3": 0.0, "4": 0.0, "5": 0.0}

    def write(run: Run) -> None:
        seed, aflora = run.value("seed"), run.value("method") == "aflora"
        if aflora and run.value("task") == "rte" and run.value("train.lr"):  # the moved cell
            write_score(run, score(run), reported=score(run) + noise[seed])
        elif aflora and run.value("task") == "mrpc" and run.value("runs_dir") == str(tmp_path / "table"):
            write_score(run, score(run) + 3 * noise[seed], reported=score(run))
        else:
            write_score(run, score(run))

    handed: list[list[Run]] = []
    assert run_study(study, "grid", lambda run: True, scoring_pool(score, handed)) == []
    with pytest.raises(SystemExit, match=r"need the finished run task=rte model=minilm method=aflora seed=1"):
        run_study(study, "more-seeds", lambda run: True, scoring_pool(score, handed))

    assert run_study(study, None, lambda run: True, scoring_pool(score, handed, write)) == []
    lower = str(grid["aflora"][0])
    more = [
        ("head", "rte", "4", None),
        ("aflora", "rte", "4", lower),
        ("head", "rte", "5", None),
        ("aflora", "rte", "5", lower),
    ]
    assert cells(handed[-1]) == more  # listed once the table's last runs had finished
    assert cells(study_runs(study, "more-seeds")) == more  # --dry-run and --status, and the report


def test_a_more_seeds_stage_naming_a_method_its_table_does_not_run_is_refused(tmp_path):
    study, _, _ = fallback_study(tmp_path)
    study.stages["more-seeds"] = {"of": "table", "seeds": [4], "pairs": [["aflora", "lora"]]}
    with pytest.raises(SystemExit, match=r"pairs name 'lora', which stage 'table' does not run"):
        study_runs(study, "more-seeds")
    study.stages["more-seeds"] = {"of": "table", "seeds": [2, 4], "pairs": [["aflora", "head"]]}
    with pytest.raises(SystemExit, match=r"seeds \[2\] are already stage 'table'"):
        study_runs(study, "more-seeds")


def test_the_fallback_is_the_next_lower_rate_and_only_at_or_below_the_probe():
    rates = [1e-3, 2e-3, 5e-3, 1e-2]
    assert fallback_rate(60.0, 55.0, 5e-3, rates) is None
    assert fallback_rate(55.0, 55.0, 5e-3, rates) == 2e-3  # at the probe's score is collapsed
    assert fallback_rate(10.0, 55.0, 2e-3, rates) == 1e-3


# --- kept predictions, read back into both protocols ----------------------------------------------


@pytest.fixture(scope="module")
def glue16(tmp_path_factory) -> Path:
    return write_glue(tmp_path_factory.mktemp("glue-budget"), tasks=["mrpc"], n_eval=24)


def test_kept_predictions_give_the_runs_own_heldout_numbers_and_the_paper_protocol(tmp_path, glue16):
    cfg = compose(
        [
            "task=mrpc",
            "method=lora",
            "model=tiny-bert",
            "debug=default",
            f"data.dir={glue16}",
            "data.protocol=heldout",
            "train.keep_predictions=true",
            "train.max_eval_samples=null",
            "train.epochs=3",
        ]
    )
    assert lifecycle.run(cfg, tmp_path) == 0
    result = json.loads((tmp_path / "result.json").read_text())
    kept = read_predictions(tmp_path)
    assert sorted(kept) == ["selection", "validation"]
    assert all(sorted(split.by_epoch) == [1, 2, 3] and len(split.labels) == 12 for split in kept.values())

    task = TaskSpec.from_config(cfg.task, "heldout")
    heldout = protocol_score(tmp_path, task, HELDOUT)
    best = result["metrics"]["best"]  # the harness's own choice, made during training
    assert heldout.epoch == best["epoch"]
    assert heldout.selection_score == pytest.approx(100 * best["f1_select"])
    assert heldout.reported == pytest.approx({"accuracy": 100 * best["accuracy"], "f1": 100 * best["f1"]})

    # The paper protocol by hand: both halves back in the split's order, scored with scikit-learn.
    chosen, rest = heldout_indices(24, 12)
    labels = np.empty(24, dtype=int)
    labels[chosen], labels[rest] = kept["selection"].labels, kept["validation"].labels
    by_epoch = {}
    for epoch in (1, 2, 3):
        whole = np.empty(24, dtype=int)
        whole[chosen], whole[rest] = kept["selection"].by_epoch[epoch], kept["validation"].by_epoch[epoch]
        by_epoch[epoch] = whole
    f1 = {e: 100 * f1_score(labels, p) for e, p in by_epoch.items()}
    epoch = max(f1, key=lambda e: (f1[e], -e))
    paper = protocol_score(tmp_path, task, PAPER)
    assert paper.epoch == epoch
    assert paper.reported["f1"] == pytest.approx(f1[epoch])
    assert paper.reported["accuracy"] == pytest.approx(100 * accuracy_score(labels, by_epoch[epoch]))


# --- the example-level paired bootstrap ------------------------------------------------------------


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    return 100 * float(np.mean(predictions == labels))


def test_bootstrap_of_identical_and_opposite_methods_by_hand():
    labels = np.array([0, 1, 1, 0, 1, 0, 0, 1])
    same = paired_bootstrap([labels.copy()], [labels.copy()], labels, accuracy, resamples=200)
    assert (same.difference, same.low, same.high, same.share_at_or_below_zero) == (0, 0, 0, 1)
    right_wrong = paired_bootstrap([labels], [1 - labels], labels, accuracy, resamples=200)
    assert (right_wrong.difference, right_wrong.low, right_wrong.high) == (100, 100, 100)
    assert right_wrong.share_at_or_below_zero == 0


def test_bootstrap_averages_over_seeds_and_its_interval_holds_the_difference():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 300)
    noisy = [np.where(rng.random(300) < p, labels, 1 - labels) for p in (0.8, 0.7)]  # ~80 % and ~70 % right
    weaker = [np.where(rng.random(300) < 0.6, labels, 1 - labels)]
    result = paired_bootstrap(noisy, weaker, labels, accuracy, resamples=500)
    by_hand = (accuracy(noisy[0], labels) + accuracy(noisy[1], labels)) / 2 - accuracy(weaker[0], labels)
    assert result.difference == pytest.approx(by_hand)
    assert result.low < result.difference < result.high and result.low > 0  # clearly ahead on 300 examples
    assert result.resamples == 500
