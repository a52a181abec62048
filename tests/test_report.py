"""Report stage: result.json files -> tables. Synthetic runs with hand-picked numbers; every
expected value is recomputed here independently (statistics module), not read from the code."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from harness.core.errors import USER_ERROR
from harness.report import ReportError, build_reports, load_runs, model_tables, parse_result
from harness.report.__main__ import main
from harness.report.paper import PAPER_COLUMNS, PAPER_TABLE
from harness.storage.results import ResultFileError

MODEL = "tinybert"
METRICS = {"rte": ("accuracy",), "mnli": ("accuracy", "accuracy_mm"), "stsb": ("pearson", "spearmanr")}
SELECTION = {"rte": "accuracy", "mnli": "accuracy", "stsb": "pearson"}

# Best-epoch scores (fractions) per (task, method) and seed. elora has no MNLI run (a missing
# task); elora RTE seed 3 failed; aflora STS-B has one seed (no std); "mymethod" is unknown.
SCORES: dict[tuple[str, str], dict[int, dict[str, float]]] = {
    ("rte", "lora"): {1: {"accuracy": 0.70}, 2: {"accuracy": 0.72}, 3: {"accuracy": 0.74}},
    ("rte", "elora"): {1: {"accuracy": 0.68}, 2: {"accuracy": 0.69}},
    ("rte", "aflora"): {1: {"accuracy": 0.75}, 2: {"accuracy": 0.71}, 3: {"accuracy": 0.74}},
    ("rte", "mymethod"): {1: {"accuracy": 0.60}},
    ("mnli", "lora"): {
        1: {"accuracy": 0.80, "accuracy_mm": 0.79},
        2: {"accuracy": 0.82, "accuracy_mm": 0.80},
        3: {"accuracy": 0.81, "accuracy_mm": 0.81},
    },
    ("mnli", "aflora"): {
        1: {"accuracy": 0.83, "accuracy_mm": 0.82},
        2: {"accuracy": 0.84, "accuracy_mm": 0.82},
        3: {"accuracy": 0.82, "accuracy_mm": 0.83},
    },
    ("stsb", "lora"): {1: {"pearson": 0.88}, 2: {"pearson": 0.89}, 3: {"pearson": 0.90}},
    ("stsb", "elora"): {1: {"pearson": 0.87}, 2: {"pearson": 0.86}, 3: {"pearson": 0.88}},
    ("stsb", "aflora"): {1: {"pearson": 0.91}},
}
# Time-weighted trainable parameters (head excluded) per (method, task).
TRAINABLE = {"lora": 1000.0, "elora": 100.0, "mymethod": 50.0}
AFLORA_TRAINABLE = {"rte": 200.0, "mnli": 300.0, "stsb": 250.0}
# seconds/epoch and samples/s per method (the same on every task)
SPEED = {"lora": (8.0, 125.0), "elora": (10.0, 100.0), "aflora": (5.0, 200.0), "mymethod": (20.0, 50.0)}


def freezing_dict(n_layers: int = 2, offset: int = 0) -> dict[str, int | None]:
    """AFLoRA freeze steps: attention projections at 0 (not plotted), FFN ones by a formula."""
    out: dict[str, int | None] = {}
    for i in range(n_layers):
        pre = f"bert.encoder.layer.{i}"
        out[f"{pre}.attention.self.query.A"] = 0
        out[f"{pre}.attention.output.dense.A"] = 0  # must not land in the out.* rows
        out[f"{pre}.attention.output.dense.B"] = 0
        out[f"{pre}.intermediate.dense.A"] = 10 + 100 * i + offset
        out[f"{pre}.intermediate.dense.B"] = 20 + 100 * i + offset
        out[f"{pre}.output.dense.A"] = 30 + 100 * i + offset
        out[f"{pre}.output.dense.B"] = None if i == n_layers - 1 else 40 + 100 * i + offset
    return out


def result(task: str, method: str, seed: int, scores: dict[str, float], **extra: Any) -> dict[str, Any]:
    """A completed result.json of the current schema, plus unknown keys the report must ignore."""
    full = {m: scores.get(m, scores[METRICS[task][0]] - 0.01) for m in METRICS[task]}
    per_epoch = [
        {"epoch": 1, "step": 10, **{m: v - 0.05 for m, v in full.items()}, "loss": 0.7},
        {"epoch": 2, "step": 20, **full, "loss": 0.5, "eval_seconds": 1.0},
    ]
    avg = AFLORA_TRAINABLE[task] if method == "aflora" else TRAINABLE[method]
    history = [[0, 400], [15, 100]] if method == "aflora" else [[0, int(avg)]]
    spe, sps = SPEED[method]
    data = {
        "schema_version": 1,
        "status": "completed",
        "error": None,
        "task": task,
        "model": MODEL,
        "method": method,
        "seed": seed,
        "config": {"anything": {"nested": True}},
        "metrics": {
            "selection_metric": SELECTION[task],
            "best": per_epoch[1],
            "final": per_epoch[1],
            "per_epoch": per_epoch,
        },
        "params": {
            "total": 10_000,
            "head": 3 if task == "stsb" else 6,
            "trainable_start": history[0][1],
            "trainable_end": history[-1][1],
            "trainable_avg": avg,
            "trainable_history": history,
        },
        "runtime": {
            "train_seconds": 2 * spe,
            "seconds_per_epoch": spe,
            "train_samples_per_second": sps,
            "eval_seconds": 1.0,
            "peak_memory_mb": 10.0,
            "steps": 20,
            "device": "cpu",
        },
        "freezing": freezing_dict(offset=seed) if method == "aflora" else None,
        "env": {"torch": "x", "hostname": "box", "device": "cpu", "something_new": 1},
        "unknown_top_level": [1, 2],
    }
    data.update(extra)
    return data


def write(root: Path, data: dict[str, Any], model: str = MODEL) -> Path:
    path = root / model / data["task"] / data["method"] / f"seed{data['seed']}" / "result.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def write_runs(root: Path) -> Path:
    for (task, method), seeds in SCORES.items():
        for seed, scores in seeds.items():
            write(root, result(task, method, seed, scores))
    failed = {"status": "failed", "error": "CUDA out of memory | tried 2 GiB", "task": "rte", "model": MODEL}
    write(root, {**failed, "method": "elora", "seed": 3, "metrics": None, "params": None})
    write(root, {"status": "running", "task": "rte", "model": MODEL, "method": "aflora", "seed": 4})
    return root


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    return write_runs(tmp_path_factory.mktemp("report") / "runs")


@pytest.fixture(scope="module")
def tables(runs_dir: Path):
    return model_tables(load_runs(runs_dir), MODEL)


def pct(task: str, method: str, metric: str) -> list[float]:
    return [100 * s[metric] for s in SCORES[(task, method)].values()]


def glue_row(tables, method: str) -> pd.Series:
    csv = tables["glue_table"].csv
    return csv.set_index("method").loc[method]


def md_row(tables, label: str) -> pd.Series:
    md = tables["glue_table"].md
    return md.set_index("Method").loc[label]


# ---------------------------------------------------------------- GLUE table


@pytest.mark.parametrize(
    ("task", "method", "metric"),
    [
        ("rte", "lora", "accuracy"),
        ("rte", "aflora", "accuracy"),
        ("mnli", "lora", "accuracy_mm"),
        ("stsb", "elora", "pearson"),
    ],
)
def test_mean_and_sample_std(tables, task: str, method: str, metric: str) -> None:
    row = glue_row(tables, method)
    values = pct(task, method, metric)
    assert row[f"{task}_{metric}"] == pytest.approx(statistics.mean(values))
    assert row[f"{task}_{metric}_std"] == pytest.approx(statistics.stdev(values))  # ddof=1
    assert row[f"{task}_{metric}_n"] == len(values)


def test_markdown_cell_shows_mean_std_and_seed_count(tables) -> None:
    values = pct("rte", "lora", "accuracy")
    expected = f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f} (n=3)"
    assert md_row(tables, "LoRA r=8")["RTE"] == expected


def test_two_metric_cell_for_mnli(tables) -> None:
    m, mm = pct("mnli", "lora", "accuracy"), pct("mnli", "lora", "accuracy_mm")
    cell_m = f"{statistics.mean(m):.2f} ± {statistics.stdev(m):.2f}"
    cell_mm = f"{statistics.mean(mm):.2f} ± {statistics.stdev(mm):.2f}"
    expected = f"{cell_m} / {cell_mm} (n=3)"
    assert md_row(tables, "LoRA r=8")["MNLI m/mm"] == expected


def test_single_seed_has_no_std(tables) -> None:
    assert md_row(tables, "AFLoRA r=4")["STS-B"] == "**91.00** (n=1)"  # also the best STS-B
    assert math.isnan(glue_row(tables, "aflora")["stsb_pearson_std"])


def test_missing_task_is_marked_never_zero(tables) -> None:
    assert md_row(tables, "ELoRA r=1024")["MNLI m/mm"] == "—"
    assert md_row(tables, "ELoRA r=1024")["CoLA"] == "—"  # no method ran CoLA: column kept, missing
    row = glue_row(tables, "elora")
    assert math.isnan(row["mnli_accuracy"]) and row["mnli_accuracy_n"] == 0
    assert r"--" in tables["glue_table"].latex()


def test_failed_seed_counted_in_cell_and_listed(tables) -> None:
    cell = md_row(tables, "ELoRA r=1024")["RTE"]
    values = pct("rte", "elora", "accuracy")
    assert cell == f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f} (n=2, 1 failed)"
    failed = tables["failed_runs"].csv
    row = failed[failed["status"] == "failed"].iloc[0]
    assert (row["task"], row["method"], row["seed"]) == ("rte", "elora", "3")
    assert row["error"] == "CUDA out of memory | tried 2 GiB"
    assert r"\|" in tables["failed_runs"].markdown()  # the pipe cannot break the Markdown row


def test_incomplete_run_listed_and_skipped(tables) -> None:
    failed = tables["failed_runs"].csv
    running = failed[failed["status"] == "running"]
    assert list(running["seed"]) == ["4"]
    assert glue_row(tables, "aflora")["rte_accuracy_n"] == 3


def test_avg_over_present_tasks(tables) -> None:
    lora = [
        statistics.mean(pct("rte", "lora", "accuracy")),
        statistics.mean(pct("stsb", "lora", "pearson")),
        (statistics.mean(pct("mnli", "lora", "accuracy")) + statistics.mean(pct("mnli", "lora", "accuracy_mm"))) / 2,
    ]
    row = glue_row(tables, "lora")
    assert row["avg"] == pytest.approx(statistics.mean(lora))
    assert row["avg_n_tasks"] == 3
    assert md_row(tables, "LoRA r=8")["Avg"] == f"{statistics.mean(lora):.2f} (3/8 tasks)"
    assert glue_row(tables, "elora")["avg_n_tasks"] == 2


def test_best_per_column_is_bold(tables) -> None:
    assert md_row(tables, "AFLoRA r=4")["RTE"].startswith("**73.33**")
    assert not md_row(tables, "LoRA r=8")["RTE"].startswith("**")
    assert md_row(tables, "AFLoRA r=4")["MNLI m/mm"].count("**") == 4  # both numbers best
    # Avg: lora and aflora both cover the 3 tasks that have results; aflora's is higher.
    assert md_row(tables, "AFLoRA r=4")["Avg"].startswith("**")
    assert not md_row(tables, "ELoRA r=1024")["Avg"].startswith("**")  # covers 2 tasks only
    assert r"\textbf{73.33}" in tables["glue_table"].latex()


def test_unknown_method_shown_by_name_and_params_column(tables) -> None:
    assert md_row(tables, "mymethod")["RTE"] == "60.00 (n=1)"
    assert md_row(tables, "LoRA r=8")["#Params"] == "1.0K"
    assert glue_row(tables, "aflora")["params_avg"] == pytest.approx(statistics.mean(AFLORA_TRAINABLE.values()))


def test_latex_is_booktabs(tables) -> None:
    tex = tables["glue_table"].latex()
    for rule in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{tabular}"):
        assert rule in tex
    assert r"\#Params" in tex and r"$\pm$" in tex


# ---------------------------------------------------------------- paper comparison


def test_comparison_beside_published_numbers(tables) -> None:
    csv = tables["paper_comparison"].csv
    row = csv[(csv.method == "aflora") & (csv.task == "rte")].iloc[0]
    ours = statistics.mean(pct("rte", "aflora", "accuracy"))
    assert row["paper"] == 88.09
    assert row["delta"] == pytest.approx(ours - 88.09)
    md = tables["paper_comparison"].markdown()
    assert f"{ours - 88.09:+.2f}" in md
    assert "not DeBERTaV3-base" in md and MODEL in md
    assert "Not in the paper's table: mymethod" in md


def test_comparison_avg_uses_paper_mean_over_same_tasks(tables) -> None:
    csv = tables["paper_comparison"].csv
    avg = csv[(csv.method == "lora") & (csv.task == "avg")].iloc[0]
    pub = PAPER_TABLE["lora"].scores
    expected = statistics.mean([pub["rte"][0], pub["stsb"][0], statistics.mean(pub["mnli"])])
    assert avg["paper"] == pytest.approx(expected)


def test_published_avg_matches_published_scores() -> None:
    """paper.py is a faithful copy: each published Avg is the mean of its 8 task scores."""
    for method, row in PAPER_TABLE.items():
        scores = [statistics.mean(row.scores[c.task]) for c in PAPER_COLUMNS]
        assert statistics.mean(scores) == pytest.approx(row.avg, abs=0.01), method


# ---------------------------------------------------------------- parameters and runtime


def test_params_table_ratios(tables) -> None:
    p = tables["params_table"].csv.set_index("method")
    af = statistics.mean(AFLORA_TRAINABLE.values())
    assert p.loc["aflora", "trainable_avg"] == pytest.approx(af)
    assert p.loc["aflora", "avg_over_lora"] == pytest.approx(af / TRAINABLE["lora"])
    assert p.loc["aflora", "lora_over_avg"] == pytest.approx(TRAINABLE["lora"] / af)
    assert (p.loc["aflora", "trainable_start"], p.loc["aflora", "trainable_end"]) == (400, 100)
    md = tables["params_table"].md.set_index("Method")
    assert md.loc["AFLoRA r=4", "Fewer than LoRA r=8"] == f"{TRAINABLE['lora'] / af:.1f}×"
    assert md.loc["LoRA r=8", "Avg ÷ LoRA r=8"] == "1.000"
    assert md.loc["LoRA r=8", "Head (excluded)"] == "3–6"


def test_runtime_ratios_and_missing_reference(tables) -> None:
    rt = tables["runtime_table"].csv.set_index(["task", "method"])
    assert rt.loc[("rte", "aflora"), "seconds_per_epoch_over_elora"] == pytest.approx(5.0 / 10.0)
    assert rt.loc[("rte", "aflora"), "train_samples_per_second_over_elora"] == pytest.approx(200.0 / 100.0)
    assert rt.loc[("rte", "aflora"), "seconds_per_epoch_over_lora"] == pytest.approx(5.0 / 8.0)
    assert math.isnan(rt.loc[("mnli", "aflora"), "seconds_per_epoch_over_elora"])  # no ELoRA MNLI run
    md = tables["runtime_table"].md
    mnli_af = md[(md["Task"] == "MNLI") & (md["Method"] == "AFLoRA r=4")].iloc[0]
    assert mnli_af["s/epoch ÷ ELoRA r=1024"] == "—"
    assert mnli_af["Machine"] == "cpu on box"
    summary = tables["runtime_summary"].csv.set_index("method")
    assert summary.loc["aflora", "train_samples_per_second_over_elora"] == pytest.approx(2.0)


def test_runtime_ratio_across_machines_is_flagged(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    write(root, result("rte", "elora", 1, {"accuracy": 0.7}))
    other = result("rte", "aflora", 1, {"accuracy": 0.7})
    other["env"]["hostname"] = "other-box"
    write(root, other)
    md = model_tables(load_runs(root), MODEL)["runtime_table"].md
    assert md.set_index("Method").loc["AFLoRA r=4", "s/epoch ÷ ELoRA r=1024"] == "0.500*"


# ---------------------------------------------------------------- schema errors


def _bad(tmp_path: Path, mutate) -> Path:
    data = result("rte", "lora", 1, {"accuracy": 0.7})
    mutate(data)
    return write(tmp_path, data)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["metrics"]["best"].pop("accuracy"), "metrics.best.accuracy"),
        (lambda d: d.update(seed="1"), "seed"),
        (lambda d: d["params"].pop("trainable_history"), "params.trainable_history"),  # older schema
        (lambda d: d["params"].update(trainable_avg="many"), "params.trainable_avg"),
        (lambda d: d["metrics"]["best"].update(accuracy=71.0), "metrics.best.accuracy"),  # percent
        (lambda d: d.pop("runtime"), "runtime"),
        (lambda d: d["metrics"]["per_epoch"].append(3), "metrics.per_epoch[2]"),
        (lambda d: d.update(freezing=[1]), "freezing"),
    ],
)
def test_schema_error_names_file_and_field(tmp_path: Path, mutate, field: str) -> None:
    path = _bad(tmp_path, mutate)
    with pytest.raises(ResultFileError) as err:
        parse_result(path)
    assert err.value.field == field
    assert str(path) in str(err.value) and f"'{field}'" in str(err.value)
    assert "\n" not in str(err.value)


def test_unparsable_json(tmp_path: Path) -> None:
    path = tmp_path / "m" / "rte" / "lora" / "seed1" / "result.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"status": "completed", ')
    with pytest.raises(ResultFileError, match="not valid JSON") as err:
        parse_result(path)
    assert str(path) in str(err.value)


def test_failed_run_needs_only_identity(tmp_path: Path) -> None:
    path = write(tmp_path, {"status": "failed", "error": "boom", "task": "rte", "model": "m", "method": "x", "seed": 1})
    run = parse_result(path)
    assert (run.status, run.error, run.seed) == ("failed", "boom", 1)
    path.write_text(json.dumps({"status": "failed", "task": "rte", "model": "m", "method": "x", "seed": 1}))
    with pytest.raises(ResultFileError, match="'error'"):
        parse_result(path)


def test_incomplete_run_identity_from_path(tmp_path: Path) -> None:
    path = tmp_path / MODEL / "rte" / "lora" / "seed9" / "result.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"status": "running"}))
    run = parse_result(path)
    assert (run.status, run.model, run.task, run.method, run.seed) == ("running", MODEL, "rte", "lora", 9)


def test_duplicate_runs_are_refused(tmp_path: Path) -> None:
    data = result("rte", "lora", 1, {"accuracy": 0.7})
    write(tmp_path, data)
    copy = tmp_path / "elsewhere" / "result.json"
    copy.parent.mkdir()
    copy.write_text(json.dumps(data))
    with pytest.raises(ReportError, match="hold the same config and seed"):
        load_runs(tmp_path)


def _moved(path: Path, folder: str) -> Path:
    """``path`` (a result.json) moved into ``folder`` beside it, as a variant's run directory."""
    (path.parent / folder).mkdir()
    return path.rename(path.parent / folder / "result.json")


@pytest.mark.parametrize(
    "first,second",
    [
        ("train.lr=1e-3", "train.lr=0.001"),  # python run.py train.lr=1e-3, then the same with -m
        ("", "train.lr=0.0005"),  # the default rate, then the same rate as an override
    ],
)
def test_one_config_and_seed_in_two_folders_is_refused_naming_both(tmp_path: Path, first: str, second: str) -> None:
    """Whatever the folders' names, one (config, seed) counts once in the GLUE table and the paired
    comparisons: the report refuses to run, naming both folders."""
    config = {"seed": 1, "train": {"lr": 0.0005 if first == "" else 0.001}}
    paths = []
    for folder in sorted((first, second), key=lambda f: f == ""):  # seed1/ itself last: write() fills it
        path = write(tmp_path / "runs", result("rte", "lora", 1, {"accuracy": 0.7}, config=config))
        paths.append(_moved(path, folder) if folder else path)
    write(tmp_path / "runs", result("rte", "aflora", 1, {"accuracy": 0.7}))
    with pytest.raises(ReportError) as refused:
        build_reports(tmp_path / "runs", tmp_path / "reports", None, "cmd")
    message = str(refused.value)
    assert "\n" not in message and "the same config and seed" in message
    assert str(paths[0].parent) in message and str(paths[1].parent) in message
    assert not (tmp_path / "reports").exists()


def test_a_model_field_that_would_leave_out_is_refused_before_anything_is_written(tmp_path: Path, capsys) -> None:
    path = write(tmp_path / "runs", result("rte", "lora", 1, {"accuracy": 0.7}))
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "model": "../../escaped"}))  # a crafted (or damaged) file
    out = tmp_path / "deep" / "reports"
    assert main(["--runs", str(tmp_path / "runs"), "--out", str(out)]) == USER_ERROR
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {path}: model = '../../escaped' cannot name a folder") and "\n" not in err
    assert not (tmp_path / "escaped").exists() and not out.exists()


# ---------------------------------------------------------------- CLI and build


def test_cli_schema_error_is_one_line_and_nonzero(tmp_path: Path, capsys) -> None:
    path = _bad(tmp_path / "runs", lambda d: d["metrics"].pop("best"))
    code = main(["--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "reports")])
    err = capsys.readouterr().err
    assert code == USER_ERROR
    assert err.strip() == f"error: {path}: field 'metrics.best' is missing (expected object)"


def test_cli_unknown_model_and_empty_dir(tmp_path: Path, capsys) -> None:
    write_runs(tmp_path / "runs")
    assert main(["--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "o"), "--model", "nope"]) == USER_ERROR
    assert "nope" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["--runs", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == USER_ERROR
    assert "no result.json" in capsys.readouterr().err


def test_paper_tables_print_the_written_comparison_and_leave_the_report_as_it_was(runs_dir, tmp_path, capsys) -> None:
    out = tmp_path / "reports"
    assert main(["--runs", str(runs_dir), "--out", str(out)]) == 0  # make report
    written = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main(["--runs", str(runs_dir), "--out", str(out), "--paper"]) == 0  # make paper-tables
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == written
    assert capsys.readouterr().out == (out / MODEL / "paper_comparison.md").read_text(encoding="utf-8")


def test_cli_help_mentions_every_option(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for option in ("--runs", "--out", "--model", "--paper"):
        assert option in out


def test_model_with_only_failed_runs_still_reports(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    write(root, {"status": "failed", "error": "x", "task": "rte", "model": "m2", "method": "lora", "seed": 1})
    written = build_reports(root, tmp_path / "reports", None, "cmd")
    assert (tmp_path / "reports" / "m2" / "README.md") in written["m2"]
    md = (tmp_path / "reports" / "m2" / "glue_table.md").read_text()
    assert "— (1 failed)" in md
