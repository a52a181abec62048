"""Fine-tune one (task, model, method, seed) and write result.json.

python run.py task=rte model=minilm method=lora seed=1
python run.py -m task=rte,mrpc method=lora,full seed=1,2     # a Hydra sweep
python run.py --help                                         # every config group and option
torchrun --nproc_per_node=4 run.py task=mnli method=aflora   # data-parallel (docs/scale.md)
python run.py -m hydra/launcher=slurm task=rte,mrpc seed=1,2,3  # a sweep on SLURM (needs .[scale])
"""

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from harness.distributed import replica_overrides, setup_process


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def run(cfg: DictConfig) -> None:
    setup_process()  # ranks of a multi-task SLURM job; quiet logs on ranks > 0
    from harness.main import main

    hydra_cfg = HydraConfig.get()
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    code = main(cfg, Path(hydra_cfg.runtime.output_dir), in_sweep=in_sweep)
    if code and not in_sweep:  # a sweep records failures in result.json and goes on
        sys.exit(code)


if __name__ == "__main__":
    # Ranks > 0 of torchrun / accelerate launch write no Hydra output into the shared run directory.
    sys.argv += replica_overrides(sys.argv[1:])
    run()
