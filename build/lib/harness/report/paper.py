"""The paper's table layout, display names and published numbers.

Published numbers: Liu et al., "AFLoRA: Adaptive Freezing of Low Rank Adaptation in Parameter
Efficient Fine-Tuning of Large Models", ACL 2024 (arXiv 2403.13269), Table 1: GLUE validation
sets, DeBERTaV3-base (copied via docs/method.md, "Published numbers"). Scores are percentages as printed;
MRPC is accuracy, CoLA Matthews correlation, STS-B Pearson; Avg averages MNLI m/mm and QQP
acc/F1 first, so it is a mean over eight task scores.
"""

from __future__ import annotations

from dataclasses import dataclass

PAPER_MODEL = "deberta-v3-base"  # the backbone behind every published number below
PAPER_MODEL_LABEL = "DeBERTaV3-base"


@dataclass(frozen=True)
class Column:
    """One task column of the GLUE table; MNLI and QQP show two metrics in one cell."""

    task: str
    label: str
    metrics: tuple[str, ...]


# The paper's column order. The metric is the one the paper reports for the task (MRPC: accuracy
# even though F1 is also computed).
PAPER_COLUMNS: tuple[Column, ...] = (
    Column("cola", "CoLA", ("matthews_correlation",)),
    Column("sst2", "SST-2", ("accuracy",)),
    Column("mrpc", "MRPC", ("accuracy",)),
    Column("qnli", "QNLI", ("accuracy",)),
    Column("stsb", "STS-B", ("pearson",)),
    Column("rte", "RTE", ("accuracy",)),
    Column("mnli", "MNLI m/mm", ("accuracy", "accuracy_mm")),
    Column("qqp", "QQP acc/F1", ("accuracy", "f1")),
)
PAPER_TASKS: tuple[str, ...] = tuple(c.task for c in PAPER_COLUMNS)

# Tasks the harness can run that the paper's table leaves out (shown as extra columns, never in Avg).
EXTRA_COLUMNS: dict[str, Column] = {"wnli": Column("wnli", "WNLI", ("accuracy",))}

METRIC_LABELS: dict[str, str] = {
    "matthews_correlation": "Matthews corr.",
    "accuracy": "accuracy",
    "accuracy_mm": "mismatched accuracy",
    "f1": "F1",
    "pearson": "Pearson",
    "spearmanr": "Spearman",
}


def task_title(task: str) -> str:
    """'CoLA', 'MNLI', ...: the paper's name of the task (its column label without metrics)."""
    col = column_for(task, "")
    return col.label.split()[0]


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


# AFLoRA with the reference code's optimizer: a run's method with its variant (report/load.py).
REFERENCE_OPTIMIZER = "aflora [train.optimizer=adamw_reference]"

METHOD_LABELS: dict[str, str] = {
    "head": "Head only (probe)",
    "full": "FFT",
    "lora": "LoRA r=8",
    "adalora": "AdaLoRA",
    "sora": "SoRA",  # the paper's row is r_max 4; conf/method/sora.yaml follows the official GLUE script's 8
    "elora": "ELoRA r=1024",
    "vera": "VeRA r=1024",
    "aflora": "AFLoRA r=4",
    "aflora-nofreeze": "AFLoRA, never frozen",
    "aflora-frozen": "AFLoRA, frozen from step 0 (ELoRA r=4)",
    "aflora-all": "AFLoRA, all projections trainable",
    REFERENCE_OPTIMIZER: "AFLoRA, reference AdamW",
}
METHOD_ORDER: tuple[str, ...] = tuple(METHOD_LABELS)


def method_label(method: str) -> str:
    """Display name; a method the report does not know is shown by its own name."""
    return METHOD_LABELS.get(method, method)


def method_sort_key(method: str) -> tuple[int, str]:
    """Paper order first, then unknown methods alphabetically."""
    if method in METHOD_ORDER:
        return (METHOD_ORDER.index(method), method)
    return (len(METHOD_ORDER), method)


def column_for(task: str, selection_metric: str) -> Column:
    """The column a task's runs fill: the paper's, a known extra one, or the run's own metric."""
    for col in PAPER_COLUMNS:
        if col.task == task:
            return col
    if task in EXTRA_COLUMNS:
        return EXTRA_COLUMNS[task]
    return Column(task, task.upper(), (selection_metric,))


@dataclass(frozen=True)
class PaperRow:
    params: float  # trainable parameters, classifier head excluded (the paper's "#Params")
    scores: dict[str, tuple[float, ...]]  # task -> published numbers, in the column's metric order
    avg: float  # the published Avg


# Table 1 of the paper (DeBERTaV3-base, GLUE dev). FFT's 184M is the whole backbone.
PAPER_TABLE: dict[str, PaperRow] = {
    "full": PaperRow(
        184e6,
        {
            "cola": (69.21,),
            "sst2": (95.64,),
            "mrpc": (89.22,),
            "qnli": (93.78,),
            "stsb": (91.59,),
            "rte": (82.49,),
            "mnli": (89.98, 89.95),
            "qqp": (92.05, 89.31),
        },
        87.82,
    ),
    "lora": PaperRow(
        1.33e6,
        {
            "cola": (69.73,),
            "sst2": (95.57,),
            "mrpc": (89.71,),
            "qnli": (93.76,),
            "stsb": (91.86,),
            "rte": (85.32,),
            "mnli": (90.47, 90.46),
            "qqp": (91.95, 89.26),
        },
        88.38,
    ),
    "adalora": PaperRow(
        1.27e6,
        {
            "cola": (70.86,),
            "sst2": (95.95,),
            "mrpc": (90.22,),
            "qnli": (94.28,),
            "stsb": (91.39,),
            "rte": (87.36,),
            "mnli": (90.27, 90.30),
            "qqp": (92.13, 88.41),
        },
        88.83,
    ),
    "sora": PaperRow(
        0.47e6,
        {
            "cola": (71.05,),
            "sst2": (95.57,),
            "mrpc": (90.20,),
            "qnli": (93.92,),
            "stsb": (91.76,),
            "rte": (86.04,),
            "mnli": (90.38, 90.43),
            "qqp": (92.06, 89.44),
        },
        88.71,
    ),
    "elora": PaperRow(
        0.16e6,
        {
            "cola": (70.74,),
            "sst2": (95.18,),
            "mrpc": (90.93,),
            "qnli": (93.58,),
            "stsb": (91.08,),
            "rte": (87.36,),
            "mnli": (90.11, 90.22),
            "qqp": (90.69, 87.63),
        },
        88.53,
    ),
    "aflora": PaperRow(
        0.14e6,
        {
            "cola": (72.01,),
            "sst2": (96.22,),
            "mrpc": (91.91,),
            "qnli": (94.42,),
            "stsb": (91.84,),
            "rte": (88.09,),
            "mnli": (89.88, 90.17),
            "qqp": (90.81, 87.77),
        },
        89.23,
    ),
}

# The paper's efficiency figure (normalised to ELoRA = 1.0): runtime AFLoRA 0.539, LoRA 0.652,
# i.e. AFLoRA trains 1.86x faster than ELoRA; trainable parameters AFLoRA 0.092 of LoRA's.
PAPER_RUNTIME_VS_ELORA: dict[str, float] = {"aflora": 0.539, "lora": 0.652, "elora": 1.0}
