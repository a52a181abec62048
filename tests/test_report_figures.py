"""Report stage: figures, the freezing-heatmap matrix, README and the CLI end to end."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure

from harness.report import freeze_matrix, load_runs, mean_freeze_matrix
from harness.report.__main__ import main
from harness.report.aggregate import completed
from harness.report.figures import (
    FREEZE_ROWS,
    freezing_by_task,
    metric_per_epoch,
    metric_vs_params,
    score_panel,
    trainable_figure,
)
from harness.report.paper import method_label, task_title
from tests.test_report import MODEL, SCORES, freezing_dict, result, write, write_runs

REFERENCE = {"train": {"optimizer": "adamw_reference"}}  # a variant's config: another fingerprint than the default's


def test_freeze_matrix_equals_given_steps() -> None:
    freezing = freezing_dict(n_layers=3)
    expected = np.array(
        [
            [10, 110, 210],  # inter.A
            [20, 120, 220],  # inter.B
            [30, 130, 230],  # out.A: the FFN output.dense, not attention.output.dense (step 0)
            [40, 140, np.nan],  # out.B: null = never froze
        ]
    )
    assert [r[0] for r in FREEZE_ROWS] == ["inter.A", "inter.B", "out.A", "out.B"]
    np.testing.assert_array_equal(freeze_matrix(freezing), expected)


def test_freeze_matrix_parses_deberta_and_peft_names() -> None:
    freezing = {
        "base_model.model.deberta.encoder.layer.11.output.dense.A": 7,
        "deberta.encoder.layer.11.attention.output.dense.B": 0,
        "deberta.encoder.layer.0.intermediate.dense.aflora_B": 3,
    }
    m = freeze_matrix(freezing)
    assert m.shape == (4, 12)
    assert m[2, 11] == 7 and m[1, 0] == 3
    assert np.isnan(m[3, 11])  # attention.output.dense.B is not the FFN out.B
    assert np.count_nonzero(~np.isnan(m)) == 2


def test_mean_over_seeds() -> None:
    m = mean_freeze_matrix([freezing_dict(2, offset=0), freezing_dict(2, offset=10)])
    np.testing.assert_allclose(m, [[15, 115], [25, 125], [35, 135], [45, np.nan]])


def test_the_heatmaps_average_aflora_alone_not_its_variants(tmp_path) -> None:
    for seed, offset in ((1, 0), (2, 10)):
        write(tmp_path, result("rte", "aflora", seed, {"accuracy": 0.7}, freezing=freezing_dict(2, offset)))
    all_projections = result("rte", "aflora", 1, {"accuracy": 0.7}, freezing=freezing_dict(2, 99))
    write(tmp_path, {**all_projections, "method": "aflora-all"})
    optimizer = result(
        "rte", "aflora", 1, {"accuracy": 0.7}, variant="train.optimizer=adamw_reference", config=REFERENCE
    )
    path = tmp_path / MODEL / "rte" / "aflora" / "seed1" / optimizer["variant"] / "result.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({**optimizer, "freezing": freezing_dict(2, 50)}))
    by_task = freezing_by_task(load_runs(tmp_path))
    assert list(by_task) == ["rte"] and len(by_task["rte"]) == 2
    np.testing.assert_allclose(mean_freeze_matrix(by_task["rte"]), [[15, 115], [25, 125], [35, 135], [45, np.nan]])


def test_the_probe_is_each_score_panels_floor_line(tmp_path) -> None:
    for seed, accuracy in ((1, 0.50), (2, 0.54)):
        write(tmp_path, {**result("rte", "lora", seed, {"accuracy": accuracy}), "method": "head"})
    write(tmp_path, result("rte", "lora", 1, {"accuracy": 0.70}))
    ax = Figure().subplots()
    score_panel(ax, load_runs(tmp_path))
    (floor,) = [line for line in ax.get_lines() if line.get_label() == method_label("head")]
    assert list(floor.get_ydata()) == [pytest.approx(52.0)] * 2  # axhline: the probe's mean, across the panel
    assert method_label("lora") in ax.get_legend_handles_labels()[1]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, int, str]:
    root = tmp_path_factory.mktemp("fig")
    runs, out = write_runs(root / "runs"), root / "reports"
    buf = io.StringIO()  # module-scoped fixture: capsys is per test, so capture stdout here
    with contextlib.redirect_stdout(buf):
        code = main(["--runs", str(runs), "--out", str(out)])  # writes the report
        code = code or main(["--runs", str(runs), "--out", str(out), "--paper"])  # only prints the comparison
    return out / MODEL, code, buf.getvalue()


def test_figures_written_as_images_of_their_figure_size(report) -> None:
    out, code, _ = report
    assert code == 0
    names = {
        "freezing_rte.png",  # AFLoRA ran RTE, MNLI and STS-B
        "freezing_mnli.png",
        "freezing_stsb.png",
        "trainable_params.png",
        "metric_vs_params.png",
        "metric_per_epoch.png",
    }
    assert {p.name for p in (out / "figures").glob("*.png")} == names
    # Three tasks: three panels and the legend's cell in a row of four, 4.3 x 3.3 in at 120 dpi.
    height, width, _ = mpimg.imread(out / "figures" / "trainable_params.png").shape
    assert (width, height) == (4 * 516, 396)


def figure_runs(root: Path) -> list:
    """The report's runs plus a probe (no trainable parameter but the head) and a VeRA that trains
    exactly as many parameters as ELoRA, on RTE: the lines a log axis or an overdrawn line hid."""
    write_runs(root)
    for seed, accuracy in ((1, 0.55), (2, 0.57)):
        probe = result("rte", "lora", seed, {"accuracy": accuracy})
        probe["params"] = {**probe["params"], "trainable_start": 0, "trainable_end": 0, "trainable_avg": 0.0}
        write(root, {**probe, "method": "head", "params": {**probe["params"], "trainable_history": [[0, 0]]}})
        write(root, {**result("rte", "elora", seed, {"accuracy": accuracy + 0.1}), "method": "vera"})
    return load_runs(root)


def panels(fig: Figure) -> dict[str, Axes]:
    return {ax.get_title(): ax for ax in fig.axes if ax.get_title()}


def methods_in(runs: list, task: str) -> set[str]:
    return {r.method for r in completed(runs) if r.task == task}


def test_every_method_shows_in_the_trainable_parameters_figure(tmp_path) -> None:
    runs = figure_runs(tmp_path)
    fig = trainable_figure(runs, MODEL)
    ax = panels(fig)[task_title("rte")]
    lines = {line.get_gid(): line for line in ax.get_lines()}
    assert set(lines) == methods_in(runs, "rte")
    bottom, top = ax.get_ylim()
    for method, line in lines.items():
        assert bottom < min(line.get_ydata()) and max(line.get_ydata()) < top, method  # inside the axes
    assert list(lines["head"].get_ydata()) == [0] * len(lines["head"].get_ydata())  # the probe, at 0
    assert len({line.get_marker() for line in lines.values()}) == len(lines)  # one marker per method

    def marks(method: str) -> set[float]:
        line = lines[method]
        return {float(line.get_xdata()[i]) for i in line.get_markevery()}

    # ELoRA and VeRA draw the same line; their markers sit at different steps, so both show.
    assert list(lines["elora"].get_ydata()) == list(lines["vera"].get_ydata())
    assert marks("elora") and marks("vera") and not marks("elora") & marks("vera")


def test_the_epoch_figure_gives_each_method_its_own_bar_from_min_to_max(tmp_path) -> None:
    runs = figure_runs(tmp_path)
    ax = panels(metric_per_epoch(runs, MODEL))[task_title("rte")]
    assert not [c for c in ax.collections if isinstance(c, PolyCollection)]  # no shaded band over another
    bars = {c.lines[0].get_gid(): c for c in ax.containers if isinstance(c, ErrorbarContainer)}
    assert set(bars) == methods_in(runs, "rte")
    xs = [round(float(x), 6) for c in bars.values() for x in c.lines[0].get_xdata()]
    assert len(xs) == len(set(xs))  # no two methods' bars at the same place
    for method, seeds in (("lora", SCORES[("rte", "lora")]), ("elora", SCORES[("rte", "elora")])):
        final = [100 * s["accuracy"] for s in seeds.values()]  # epoch 2: the best-epoch scores
        (segments,) = [c.get_segments() for c in bars[method].lines[2]]
        (low, high) = segments[1][:, 1]  # epoch 2's bar
        assert (low, high) == (pytest.approx(min(final)), pytest.approx(max(final)))
        assert bars[method].lines[0].get_ydata()[1] == pytest.approx(np.mean(final))


@pytest.mark.parametrize("build", [trainable_figure, metric_vs_params, metric_per_epoch])
def test_no_figure_has_an_empty_panel(tmp_path, build) -> None:
    runs = figure_runs(tmp_path)
    fig = build(runs, MODEL)
    done = completed(runs)
    assert len(panels(fig)) == len({r.task for r in done})
    for ax in fig.axes:
        assert ax.get_visible() and (ax.lines or ax.collections or ax.get_legend()), ax.get_title()
    (legend_cell,) = [ax for ax in fig.axes if ax.get_legend()]  # the spare cell holds the legend
    labels = [t.get_text() for t in legend_cell.get_legend().get_texts()]
    assert set(labels) == {method_label(r.method) for r in done}


def test_tables_and_readme_written(report) -> None:
    out, _, stdout = report
    for stem in ("glue_table", "paper_comparison", "params_table", "runtime_table", "runtime_summary", "failed_runs"):
        rows = len(pd.read_csv(out / f"{stem}.csv"))
        assert rows > 0, stem
        assert "|:--" in (out / f"{stem}.md").read_text() or "|---" in (out / f"{stem}.md").read_text(), stem
        tex = (out / f"{stem}.tex").read_text()
        assert "\\begin{tabular}" in tex and tex.count("\\\\") >= 2, stem  # a header and a row at least
    readme = (out / "README.md").read_text()
    assert "python -m harness.report --runs" in readme
    assert "![freezing_rte](figures/freezing_rte.png)" in readme
    assert "![metric_per_epoch](figures/metric_per_epoch.png)" in readme
    assert "not DeBERTaV3-base" in readme
    assert "CUDA out of memory" in readme
    # --paper prints the comparison table after the list of written files
    assert "Reproduced (tinybert) vs published (DeBERTaV3-base)" in stdout
    assert str(out / "README.md") in stdout
