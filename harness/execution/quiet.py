"""Output fit for where it goes: progress bars on a terminal, plain lines in a log file, and none of
the libraries' warnings about their own internals.

A sweep or study writes each run's output to a file (harness/studies/pool.py), where every redraw of a
progress bar is a carriage return and escape codes. There the Trainer prints its logged numbers as
lines instead (``disable_tqdm``), and datasets, transformers and huggingface_hub draw no bars.
"""

from __future__ import annotations

import sys
import warnings


def progress_bars() -> bool:
    """Whether bars suit stderr: a terminal, not a file or a pipe."""
    return sys.stderr.isatty()


def quiet_libraries() -> None:
    """Called once by each entry point (run.py, harness.predict, harness.bench)."""
    # peft 0.21's PeftModel reads transformers 5's deprecated ``is_gradient_checkpointing``: a
    # FutureWarning on every run that no setting of ours can address.
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    if progress_bars():
        return
    import datasets
    import huggingface_hub.utils
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    huggingface_hub.utils.disable_progress_bars()
