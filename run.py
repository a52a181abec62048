"""Fine-tune one (task, model, method, seed) and write result.json.

python run.py task=rte model=minilm method=lora seed=1
python run.py -m task=rte,mrpc method=lora,full seed=1,2     # a Hydra sweep
python run.py --help                                         # every config group and option
torchrun --nproc_per_node=4 run.py task=mnli method=aflora   # data-parallel (docs/scale.md)
python run.py -m hydra/launcher=slurm task=rte,mrpc seed=1,2,3  # a sweep on SLURM (needs .[scale])
"""

import os
import signal
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from harness.config.schema import register_schema
from harness.config.validation import register_resolver
from harness.core import cli_help  # noqa: F401  registers ${conf_options:...} for --help
from harness.core.cli_errors import SweepRunFailed, exit_code_and_line
from harness.core.errors import INTERRUPTED
from harness.execution.distributed import replica_overrides, setup_process
from harness.execution.quiet import quiet_libraries
from harness.storage.identity import variant

register_schema()  # the typed schema conf/config.yaml's defaults start from
register_resolver()  # ${run_subdir:...}: the run directory of a config that passed validation

FAILED_IN_SWEEP: list[str] = []  # the runs of this process's sweep that failed


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def run(cfg: DictConfig) -> None:
    setup_process()  # ranks of a multi-task SLURM job; quiet logs on ranks > 0
    quiet_libraries()  # progress bars on a terminal only; no library warnings about their internals
    from harness.config.budget import check_budget
    from harness.core.errors import ConfigError, print_user_error
    from harness.execution import lifecycle

    hydra_cfg = HydraConfig.get()
    try:
        check_budget(hydra_cfg.runtime.choices)
    except ConfigError as err:  # before Hydra's own report of an exception, which adds a line
        sys.exit(print_user_error(err))
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    run_dir = Path(hydra_cfg.runtime.output_dir)
    code = lifecycle.run(cfg, run_dir, in_sweep=in_sweep, variant=variant(hydra_cfg.overrides.task))
    if code and (not in_sweep or code == INTERRUPTED):
        sys.exit(code)
    if code:  # the sweep goes on; Hydra re-raises the first failure once every run has finished
        FAILED_IN_SWEEP.append(str(run_dir))
        raise SweepRunFailed(f"{run_dir} failed (its result.json says why)", code)


if __name__ == "__main__":
    # Ranks > 0 of torchrun / accelerate launch write no Hydra output into the shared run directory.
    sys.argv += replica_overrides(sys.argv[1:])
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra's errors reach the handler below, which prints one line
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over `ulimit -f`: a write fails (EFBIG) instead of a kill
    try:
        run()
    except KeyboardInterrupt:  # before or after a run (a run itself says what it kept)
        print("interrupted", file=sys.stderr)
        sys.exit(INTERRUPTED)
    except Exception as err:
        code, line = exit_code_and_line(err, FAILED_IN_SWEEP)
        if code is None:
            raise  # a bug: keep the traceback
        print(line, file=sys.stderr)
        sys.exit(code)
