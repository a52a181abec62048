"""Several processes, one run: run.py under torchrun, accelerate launch, or a multi-task SLURM job.

    torchrun --nproc_per_node=4 run.py task=mnli model=deberta-v3-base method=aflora
    accelerate launch --multi_gpu --num_processes=4 run.py task=qnli ...

Every process composes the same config, so every rank computes the same, deterministic run
directory (``runs/<model>/<task>/<method>/seed<seed>/``; a ``${now}`` in it would differ per rank).
The HF Trainer does the data-parallel work: it shards the batches, all-reduces the gradients
before any callback sees them, and saves the model and optimizer from rank 0. Left to the harness:

- Only rank 0 writes: Hydra's ``.hydra/`` and ``run.log`` (``replica_overrides``, added to the
  command line of ranks > 0 before Hydra parses it), ``result.json`` and the checkpoint clean-up.
  Ranks > 0 print warnings and errors only (``setup_process``).
- All ranks take the same decisions. Skipping a completed run reads ``result.json``, which only
  rank 0 changes and only after training (a collective) or on ``force=true`` (when every rank
  trains anyway); which checkpoint to resume from is rank 0's choice (``agree``), made after its
  ``force=true`` clean-up; rank 0 deletes checkpoints only after every rank finished (``barrier``),
  when no rank writes its RNG state into them any more.
- The recipe's effective batch is kept: ``harness.execution.training.batch_layout`` divides it by the
  number of processes and accumulates the rest, and ``build_trainer`` keeps the Trainer from
  scaling the loss by accumulation steps x processes.

Launchers set ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK``; a SLURM (or submitit local) job with
several tasks gets them from submitit (``setup_process``), one task per GPU.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

# Hydra overrides for ranks > 0: no .hydra/ folder and no log file in the shared run directory,
# no logging configuration (setup_process then lets warnings and errors through, to stderr).
REPLICA_OVERRIDES = {
    "hydra.output_subdir": "null",
    "hydra/job_logging": "disabled",
    "hydra/hydra_logging": "disabled",
}


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    return rank() == 0


def replica_overrides(argv: Sequence[str]) -> list[str]:
    """The overrides to append to the command line of a rank > 0 (none on rank 0 or a single process).

    A key the user set on the command line is left to the user.
    """
    if is_main_process():
        return []
    given = {arg.split("=", 1)[0].lstrip("+~") for arg in argv if "=" in arg}
    return [f"{key}={value}" for key, value in REPLICA_OVERRIDES.items() if key not in given]


def setup_process() -> None:
    """At the start of a job: take the rank from a multi-task submitit job, and quiet ranks > 0."""
    _export_submitit_ranks()
    if is_main_process():
        return
    logging.getLogger().setLevel(logging.WARNING)
    import datasets  # the tokenisation progress bars of every rank would interleave with rank 0's

    datasets.disable_progress_bars()
    datasets.utils.logging.set_verbosity_error()


def _export_submitit_ranks() -> None:
    """In a submitit job with several tasks (SLURM ``tasks_per_node`` > 1), export the variables of
    ``torch.distributed``'s env:// rendezvous, as torchrun does. A no-op anywhere else."""
    if "RANK" in os.environ or "SUBMITIT_FOLDER" not in os.environ:  # set by submitit in its jobs only
        return
    import submitit

    env = submitit.helpers.TorchDistributedEnvironment()
    if env.world_size > 1:
        # Each task keeps every GPU of its node visible: the Trainer picks cuda:LOCAL_RANK.
        env.export(set_cuda_visible_devices=False)


def _process_group():
    """``torch.distributed`` while a group of several processes is up, else None.

    Imported here, not at the top: run.py imports this module before Hydra parses the command line.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist
    return None


def barrier() -> None:
    """Wait for every rank (a no-op in a single process)."""
    if (dist := _process_group()) is not None:
        dist.barrier()


def agree(value: T) -> T:
    """Rank 0's ``value`` on every rank (picklable; a no-op in a single process)."""
    if (dist := _process_group()) is None:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
