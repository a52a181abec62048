"""PNG figures: AFLoRA's freezing heatmap, trainable parameters over steps, score vs parameters,
and the validation metric per epoch.

Uses matplotlib's object API on Agg canvases (no pyplot), so nothing depends on a display or on
global figure state, and figures are freed as soon as they are written.
"""

from __future__ import annotations

import logging
import math
import re
import textwrap
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, MaxNLocator, NullLocator

from harness.report.aggregate import completed, paper_task_order, sorted_methods
from harness.report.load import RunRecord
from harness.report.paper import METHOD_ORDER, method_label, method_sort_key, metric_label, task_title
from harness.report.study_tables import FLOOR

log = logging.getLogger(__name__)

# Heatmap rows: the FFN projections whose freezing the paper plots. "output.dense" is the FFN
# output; the attention output ("attention.output.dense") is a different module and not a row.
FREEZE_ROWS: tuple[tuple[str, str, str], ...] = (
    ("inter.A", "intermediate.dense", "A"),
    ("inter.B", "intermediate.dense", "B"),
    ("out.A", "output.dense", "A"),
    ("out.B", "output.dense", "B"),
)
_LAYER = re.compile(r"(?:^|\.)layer\.(\d+)\.")
# `layer.<i>.` directly followed by the module, so `layer.<i>.attention.output.dense` never
# matches the FFN output row. The suffix may be `.A` or a prefixed parameter name `.aflora_A`.
_FFN = re.compile(r"(?:^|\.)layer\.(\d+)\.(intermediate\.dense|output\.dense)\.(?:\w+_)?([AB])$")


def n_layers_of(freezing: Mapping[str, int | None]) -> int:
    """Number of layers = highest `layer.<i>` index in any module name + 1."""
    found = [int(m.group(1)) for k in freezing if (m := _LAYER.search(k))]
    return max(found) + 1 if found else 0


def freeze_matrix(freezing: Mapping[str, int | None], n_layers: int | None = None) -> np.ndarray:
    """(4, n_layers) freeze steps in FREEZE_ROWS order; NaN = never froze or not recorded."""
    n = n_layers_of(freezing) if n_layers is None else n_layers
    out = np.full((len(FREEZE_ROWS), n), np.nan)
    rows = {(module, ab): i for i, (_, module, ab) in enumerate(FREEZE_ROWS)}
    for name, step in freezing.items():
        m = _FFN.search(name)
        if m and step is not None and int(m.group(1)) < n:
            out[rows[(m.group(2), m.group(3))], int(m.group(1))] = step
    return out


def mean_freeze_matrix(freezings: Sequence[Mapping[str, int | None]]) -> np.ndarray:
    """Mean over seeds; a matrix that froze in only some seeds averages those seeds."""
    n = max((n_layers_of(f) for f in freezings), default=0)
    stack = np.stack([freeze_matrix(f, n) for f in freezings]) if freezings else np.zeros((0, 4, 0))
    with warnings.catch_warnings():  # all-NaN cells (never froze in any seed) stay NaN quietly
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return np.nanmean(stack, axis=0) if len(stack) else np.full((len(FREEZE_ROWS), 0), np.nan)


def _method_index(method: str) -> int:
    """A method's place in paper order. Unknown methods share the three places after the known
    ones, chosen by name so a method keeps its colour and marker from one report to the next."""
    known = list(METHOD_ORDER)
    return known.index(method) if method in known else len(known) + sum(map(ord, method)) % 3


def method_colour(method: str) -> str:
    """The same colour for a method in every figure (tab10 by paper order)."""
    return f"C{_method_index(method) % 10}"


def _legend_entries(axes: list[Axes]) -> dict[str, object]:
    """Each label once, in the order the panels drew them (methods in paper order)."""
    handles: dict[str, object] = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, h)
    return handles


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=120)  # constrained layout already fits; "tight" would draw twice
    return path


def _grid_shape(n: int) -> tuple[int, int, bool]:
    """(rows, cols, legend in its own cell) for n panels, leaving no cell empty when it can: the
    legend takes the cell after the panels (n + 1 cells), or goes below a full grid of n; at most
    4 columns."""
    for cells, legend_cell in ((n + 1, True), (n, False)):
        for cols in (4, 3, 2, 1):
            if cells % cols == 0 and (cols > 1 or cells == 1):
                return cells // cols, cols, legend_cell
    cols = min(4, n)
    return math.ceil(n / cols), cols, False


def _grid(n: int, width: float = 4.3, height: float = 3.3) -> tuple[Figure, list[Axes], Axes | None]:
    """A figure with ``n`` panels and, where the grid has room, a cell for the legend; any cell
    left over is removed, not left blank."""
    rows, cols, legend_cell = _grid_shape(n)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    legend_ax = axes[n] if legend_cell else None
    for ax in axes[n + legend_cell :]:
        ax.remove()
    return fig, axes[:n], legend_ax


def _figure_legend(fig: Figure, axes: list[Axes], legend_ax: Axes | None) -> None:
    """One legend for the whole grid, in its own cell or below the panels (never over a panel or
    the suptitle), not one crowding every panel."""
    handles = _legend_entries(axes)
    if legend_ax is not None:
        legend_ax.axis("off")
        legend_ax.legend(list(handles.values()), list(handles), loc="center", frameon=False)
    elif handles:
        fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=min(len(handles), 7))


def _step_text(v: float) -> str:
    """A seed mean can fall between steps: '7.5', not a rounded '8'."""
    return f"{v:.0f}" if v == round(v) else f"{v:.1f}"


def freezing_heatmap(matrix: np.ndarray, title: str, path: Path) -> Path:
    fig = Figure(figsize=(max(6.0, 0.75 * matrix.shape[1] + 2.5), 3.2), layout="constrained")
    ax = fig.subplots()
    masked = np.ma.masked_invalid(matrix)
    cmap = colormaps["viridis"].with_extremes(bad="#d9d9d9")  # grey = never froze
    im = ax.imshow(masked, aspect="auto", cmap=cmap)
    finite = matrix[np.isfinite(matrix)]
    mid = (finite.min() + finite.max()) / 2 if finite.size else 0.0
    for (i, j), v in np.ndenumerate(matrix):
        text, colour = ("never", "black") if math.isnan(v) else (_step_text(v), "white" if v < mid else "black")
        ax.text(j, i, text, ha="center", va="center", fontsize=8, color=colour)
    ax.set_xticks(range(matrix.shape[1]))
    ax.set_yticks(range(len(FREEZE_ROWS)), [r[0] for r in FREEZE_ROWS])
    ax.set_xlabel("layer" + (" (grey: never froze)" if np.isnan(matrix).any() else ""))
    ax.set_ylabel("projection matrix")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="step at which it froze")
    return _save(fig, path)


def freezing_by_task(runs: list[RunRecord]) -> dict[str, list[Mapping[str, int | None]]]:
    """Per task (paper order), the `freezing` of each completed AFLoRA run. AFLoRA's own config
    only: a variant freezes on another schedule, and would blur the mean."""
    by_task: dict[str, list[Mapping[str, int | None]]] = {}
    for r in completed(runs):
        if r.method == "aflora" and r.result.freezing:
            by_task.setdefault(r.task, []).append(r.result.freezing)
    return {task: by_task[task] for task in paper_task_order(by_task)}


def freezing_figures(runs: list[RunRecord], model: str, out_dir: Path) -> list[Path]:
    """One heatmap per task from AFLoRA runs' `freezing`, averaged over seeds."""
    paths = []
    for task, freezings in freezing_by_task(runs).items():
        matrix = mean_freeze_matrix(freezings)
        if matrix.size == 0:
            log.warning("%s: freezing has no `layer.<i>` FFN modules; no heatmap", task)
            continue
        n = len(freezings)
        seeds = f"{n} seed{'s' * (n > 1)}"
        title = f"AFLoRA freezing step — {task_title(task)} ({model}, mean of {seeds})"
        paths.append(freezing_heatmap(matrix, title, out_dir / f"freezing_{task}.png"))
    return paths


def _last_step(run: RunRecord) -> int:
    """The run's final optimizer step (runtime.steps, else the last evaluation's step)."""
    steps = [run.result.runtime.steps or 0]
    steps += [e.step or 0 for e in run.result.metrics.per_epoch]
    steps += [s for s, _ in run.result.params.trainable_history]
    return int(max(steps))


def _per_task_figure(
    runs: list[RunRecord], suptitle: str, panel: Callable[[Axes, list[RunRecord]], None]
) -> Figure | None:
    """A grid with one panel per task (paper order), each drawn by `panel` from that task's
    completed runs, one legend for the grid; None when no run completed."""
    done = completed(runs)
    tasks = paper_task_order({r.task for r in done})
    if not tasks:
        return None
    fig, axes, legend_ax = _grid(len(tasks))
    for ax, task in zip(axes, tasks, strict=True):
        panel(ax, [r for r in done if r.task == task])
        ax.set_title(task_title(task))
    _figure_legend(fig, axes, legend_ax)
    # A one- or two-panel grid is narrower than a long title: wrap it to the figure's width.
    width_chars = int(fig.get_figwidth() * 9)
    fig.suptitle(textwrap.fill(suptitle, width=max(width_chars, 30)))
    return fig


# Methods can train exactly as many parameters as each other (ELoRA and VeRA; LoRA and SoRA before
# SoRA prunes): each gets its own marker, placed at its own x positions, so a line under another
# still shows.
MARKERS = (
    "o",
    "s",
    "^",
    "D",
    "v",
    "P",
    "X",
    "*",
    "<",
    ">",
    "h",
    "p",
    "H",
    "d",
    "8",
)  # 15: the known methods and 3 more
_MARKS_PER_LINE = 6
_LINEAR_BELOW = 1e4  # the trainable-parameter axis: linear from 0 to here, then log


def method_marker(method: str) -> str:
    """The same marker for a method in every figure."""
    return MARKERS[_method_index(method) % len(MARKERS)]


def _step_line(run: RunRecord) -> tuple[np.ndarray, np.ndarray]:
    """The trainable count as a step function: its change points and the run's last step."""
    hist = sorted(run.result.params.trainable_history)
    x = [s for s, _ in hist] + [max(_last_step(run), hist[-1][0])]
    y = [c for _, c in hist] + [hist[-1][1]]
    return np.array(x, dtype=float), np.array(y, dtype=float)


def _with_marks(x: np.ndarray, y: np.ndarray, phase: float) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The step line with points added at (k + phase) / _MARKS_PER_LINE of its length, and their
    indices (where the markers go). ``phase`` in [0, 1) staggers one method's marks from another's."""
    marks = x[0] + (x[-1] - x[0]) * (np.arange(_MARKS_PER_LINE) + phase) / _MARKS_PER_LINE
    xs = np.union1d(x, marks)
    ys = y[np.searchsorted(x, xs, side="right") - 1]  # the count in force at each point (steps-post)
    return xs, ys, [int(np.searchsorted(xs, m)) for m in marks]


def _trainable_panel(ax: Axes, runs: list[RunRecord]) -> None:
    labelled = set()
    methods = sorted_methods({r.method for r in runs})
    for r in sorted(runs, key=lambda r: (method_sort_key(r.method), r.seed)):
        x, y = _step_line(r)
        xs, ys, marks = _with_marks(x, y, (methods.index(r.method) + 0.5) / len(methods))
        line = ax.plot(
            xs,
            ys,
            drawstyle="steps-post",
            color=method_colour(r.method),
            alpha=0.8,
            lw=1.5,
            marker=method_marker(r.method),
            markevery=marks,
            ms=5,
            label=None if r.method in labelled else method_label(r.method),
        )[0]
        line.set_gid(r.method)
        labelled.add(r.method)
    # Log above 10,000, linear below: the probe trains no parameter besides the head and sits at 0.
    ax.set_yscale("symlog", linthresh=_LINEAR_BELOW, linscale=0.4)
    top = max(1.0, *(line.get_ydata().max() for line in ax.get_lines()))
    ax.yaxis.set_major_locator(FixedLocator([0.0, *(10.0**k for k in range(4, math.ceil(math.log10(top)) + 1))]))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.set_ylim(-0.1 * _LINEAR_BELOW, 2 * top)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("trainable parameters (0, then log)")


def trainable_figure(runs: list[RunRecord], model: str) -> Figure | None:
    """Trainable parameters (head excluded) against optimizer step, a step line per run."""
    title = f"Trainable parameters during training, head excluded ({model}; one line per seed)"
    return _per_task_figure(runs, title, _trainable_panel)


def _main_metric(run: RunRecord) -> str:
    return run.column.metrics[0]


def score_panel(ax: Axes, runs: list[RunRecord]) -> None:
    metric = _main_metric(runs[0])
    for m in sorted_methods({r.method for r in runs}):
        rs = [r for r in runs if r.method == m]
        ys = [100 * r.result.metrics.best.numbers[metric] for r in rs]
        if m == FLOOR:  # no trainable parameters to place on a log axis: the probe is the panel's floor
            ax.axhline(float(np.mean(ys)), color=method_colour(m), ls="--", lw=1.2, label=method_label(m))
            continue
        x = float(np.mean([r.result.params.trainable_avg for r in rs]))
        yerr = float(np.std(ys, ddof=1)) if len(ys) > 1 else 0.0
        ax.errorbar(x, np.mean(ys), yerr=yerr, fmt="o", capsize=3, ms=6, color=method_colour(m), label=method_label(m))
    ax.set_xscale("log")
    ax.set_xlabel("average trainable parameters (log)")
    ax.set_ylabel(f"{metric_label(metric)} (%) at best epoch")


def metric_vs_params(runs: list[RunRecord], model: str) -> Figure | None:
    """Each method's mean score (± std over seeds) against its average trainable parameters; the
    probe, with none, as a dashed line."""
    title = f"Score vs trainable parameters ({model}; mean ± sample std over seeds)"
    return _per_task_figure(runs, title, score_panel)


_DODGE = 0.3  # of an epoch: the width over which the methods' bars at one epoch are spread


def _epoch_panel(ax: Axes, runs: list[RunRecord]) -> None:
    """Per method, the mean over seeds at each epoch with a bar from the lowest seed to the highest,
    each method shifted a little along x so that no bar hides another (a shaded band per method
    overlapped the others)."""
    metric = _main_metric(runs[0])
    methods = sorted_methods({r.method for r in runs})
    for i, m in enumerate(methods):
        curves: dict[float, list[float]] = {}
        for r in (r for r in runs if r.method == m):
            for e in r.result.metrics.per_epoch:
                if e.numbers.get(metric) is not None:
                    curves.setdefault(float(e.epoch), []).append(100 * e.numbers[metric])
        if not curves:
            continue
        epochs = sorted(curves)
        offset = _DODGE * ((i + 0.5) / len(methods) - 0.5)
        mean = np.array([np.mean(curves[e]) for e in epochs])
        spread = [mean - [min(curves[e]) for e in epochs], [max(curves[e]) for e in epochs] - mean]
        bars = ax.errorbar(
            np.array(epochs) + offset,
            mean,
            yerr=spread,
            marker=method_marker(m),
            ms=4,
            lw=1.2,
            elinewidth=1,
            capsize=2,
            color=method_colour(m),
            label=method_label(m),
        )
        bars.lines[0].set_gid(m)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # evaluations come once an epoch
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation {metric_label(metric)} (%)")


def metric_per_epoch(runs: list[RunRecord], model: str) -> Figure | None:
    """Validation metric per epoch, one line per method (mean over seeds, bar = min..max)."""
    title = f"Validation metric per epoch ({model}; mean over seeds, bar = min–max, methods side by side)"
    return _per_task_figure(runs, title, _epoch_panel)


def all_figures(runs: list[RunRecord], model: str, fig_dir: Path) -> list[Path]:
    """Write every figure; stale heatmaps of tasks that no longer have AFLoRA runs are removed."""
    for old in fig_dir.glob("freezing_*.png"):
        old.unlink()
    paths = freezing_figures(runs, model, fig_dir)
    for fn, name in (
        (trainable_figure, "trainable_params.png"),
        (metric_vs_params, "metric_vs_params.png"),
        (metric_per_epoch, "metric_per_epoch.png"),
    ):
        fig = fn(runs, model)
        if fig is None:
            (fig_dir / name).unlink(missing_ok=True)
        else:
            paths.append(_save(fig, fig_dir / name))
    return paths
