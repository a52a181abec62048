"""Under torch.distributed every rank takes rank 0's freezing decisions, even if its scores drift."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from transformers import TrainerControl, TrainerState

from aflora import AFLoraFreezer
from tests.tiny_models import tiny_bert, wrap_aflora

WORLD = 2


def _rank_main(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        model = wrap_aflora(tiny_bert(seed=0))
        freezer = AFLoraFreezer(model, total_steps=40, t_i=2, t_f=10, window=1)
        args, state, control = SimpleNamespace(max_grad_norm=0, output_dir=out_dir), TrainerState(), TrainerControl()
        freezer.on_train_begin(args, state, control)
        params = [p for n, p in model.named_parameters() if "aflora_A" in n or "aflora_B" in n]
        for step in range(40):
            state.global_step = step
            # Deliberately different gradients per rank: only the broadcast can make them agree.
            gen = torch.Generator().manual_seed(100 * step + rank)
            for p in params:
                p.grad = torch.rand(p.shape, generator=gen) if p.requires_grad else None
            freezer.on_pre_optimizer_step(args, state, control)
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(freezer.result_fields()))
    finally:
        dist.destroy_process_group()


def test_all_ranks_take_rank_zero_decisions(tmp_path):
    # fork: the ranks inherit the imported libraries instead of importing them again (seconds each)
    mp.start_processes(_rank_main, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, start_method="fork")
    results = [json.loads((tmp_path / f"rank{r}.json").read_text())["freezing"] for r in range(WORLD)]
    assert results[0] == results[1]
    assert len({s for s in results[0].values() if s}) > 1  # several distinct freezing steps were agreed
