"""Fine-tune one (task, model, method, seed) and write result.json.

python run.py task=rte model=minilm method=lora seed=1
python run.py -m task=rte,mrpc method=lora,full seed=1,2     # a Hydra sweep
python run.py --help                                         # every config group and option
"""

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def run(cfg: DictConfig) -> None:
    from harness.main import main

    hydra_cfg = HydraConfig.get()
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    code = main(cfg, Path(hydra_cfg.runtime.output_dir), in_sweep=in_sweep)
    if code and not in_sweep:  # a sweep records failures in result.json and goes on
        sys.exit(code)


if __name__ == "__main__":
    run()
