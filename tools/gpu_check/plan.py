"""The GPU check's two sizes: the real one (one H200, 8 minutes) and the dry run (CPU, tiny, seconds).

Both run the same steps with the same code; only the models, sizes and counts below differ.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    device: str
    limit: float  # seconds the whole check may take; it stops itself then, keeping what it has
    bench: tuple[str, ...]  # harness.bench arguments of the speed bench (run at fp32, then bf16)
    epoch: tuple[str, ...]  # harness.bench mode=epoch arguments (one run per method)
    epoch_methods: tuple[str, ...]  # ELoRA first: every ratio needs it
    study_model: str  # the conf/model group option
    study_name: str  # model.name: what result.json and the report call it (a label when it differs)
    study_tasks: tuple[str, ...]
    study_methods: tuple[str, ...]
    study_seeds: tuple[int, ...]
    study_overrides: tuple[str, ...]  # run.py overrides besides task, model, method, seed, device
    workers: int  # trainings at once
    threads: int  # torch threads per training (train.threads)


# The bf16 bench's rows: all but VeRA. PEFT 0.21's VeRA layer returns its input's dtype under
# autocast (float32), and DeBERTa's attention then fills bf16 scores with float32's minimum: an error.
BF16_ROWS = "floor,full,lora,adalora,elora,aflora,aflora-nofreezer,aflora-frozen,aflora-frozen-unfolded"

GPU = Plan(
    device="cuda",
    limit=480.0,
    # the paper's shapes with random weights, at the reference batch: 32 x 256 tokens (bench default)
    bench=("model=deberta-v3-base-random", "device=cuda"),
    epoch=("model=deberta-v3-base-random", "device=cuda", "task=rte", "cache_timings=false"),
    epoch_methods=("elora", "aflora", "lora"),
    study_model="minilm",
    # The weights travelled in float16 (carry.py): every result says so in its model name, its run
    # directory and its report (reports/gpu/minilm-fp16/). Recipes still follow model=minilm.
    study_name="minilm-fp16",
    study_tasks=("mrpc", "stsb", "cola", "sst2", "rte"),
    study_methods=("aflora", "lora", "elora"),
    study_seeds=(1, 2, 3),
    study_overrides=("train.max_train_samples=null",),  # full training sets: the CPU protocol subsets them
    workers=8,
    threads=2,  # 16 cores / 8 trainings
)

DRY_RUN = Plan(
    device="cpu",
    limit=600.0,  # generous: 96 to 213 s on the 2-core machine with other jobs on it (60 to 80 s of CPU)
    bench=("model=tiny-deberta", "device=cpu", "quick=true", "threads=1"),
    epoch=("model=tiny-deberta", "device=cpu", "task=rte", "cache_timings=false", "train_samples=64", "threads=1"),
    epoch_methods=("lora",),
    study_model="tiny-bert",
    study_name="tiny-bert-dry",
    study_tasks=("mrpc",),
    study_methods=("aflora", "elora"),
    study_seeds=(1,),
    study_overrides=(
        "train.max_train_samples=32",
        "train.max_eval_samples=32",
        "train.epochs=1",
        "data.max_seq_length=32",
    ),
    workers=2,
    threads=1,
)

# Of the limit, the share each step can count on whatever the steps before it took: a step may run
# until only the later steps' shares are left. The study takes whatever remains.
RESERVES = {"bench-fp32": 0.12, "bench-bf16": 0.12, "epoch": 0.2, "study": 0.12, "report": 0.05}


def step_end(step: str, deadline: float, limit: float) -> float:
    """When ``step`` must end: the deadline less the shares of the steps after it (of all the steps
    in RESERVES for a step before them)."""
    names = list(RESERVES)
    later = names[names.index(step) + 1 :] if step in RESERVES else names
    return deadline - limit * sum(RESERVES[n] for n in later)


def study_cells(plan: Plan) -> list[tuple[str, str, int]]:
    """(task, method, seed) in the order they run: seed by seed, task by task, method by method."""
    return [(t, m, s) for s in plan.study_seeds for t in plan.study_tasks for m in plan.study_methods]
