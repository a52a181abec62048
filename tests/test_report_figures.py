"""Report stage: figures, the freezing-heatmap matrix, README and the CLI end to end."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from harness.report import freeze_matrix, load_runs, mean_freeze_matrix
from harness.report.__main__ import main
from harness.report.figures import FREEZE_ROWS, freezing_by_task, score_panel
from harness.report.paper import method_label
from tests.test_report import MODEL, freezing_dict, result, write, write_runs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
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
        code = main(["--runs", str(runs), "--out", str(out), "--paper"])
    return out / MODEL, code, buf.getvalue()


def test_figures_written_and_non_empty(report) -> None:
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
    for name in names:
        data = (out / "figures" / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5_000, name


def test_tables_and_readme_written(report) -> None:
    out, _, stdout = report
    for stem in ("glue_table", "paper_comparison", "params_table", "runtime_table", "runtime_summary", "failed_runs"):
        for ext in ("md", "csv", "tex"):
            assert (out / f"{stem}.{ext}").stat().st_size > 0, f"{stem}.{ext}"
    readme = (out / "README.md").read_text()
    assert "python -m harness.report --runs" in readme and "--paper" in readme
    assert "![freezing_rte](figures/freezing_rte.png)" in readme
    assert "![metric_per_epoch](figures/metric_per_epoch.png)" in readme
    assert "not DeBERTaV3-base" in readme
    assert "CUDA out of memory" in readme
    # --paper prints the comparison table after the list of written files
    assert "Reproduced (tinybert) vs published (DeBERTaV3-base)" in stdout
    assert str(out / "README.md") in stdout
