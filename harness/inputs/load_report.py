"""What a checkpoint lacked or held beyond the model, said by the harness instead of transformers.

transformers 5 logs a table for every checkpoint loaded into a new head ("... LOAD REPORT ...
classifier.weight | MISSING ... Consider training on your downstream task"): on every run, on
predict, and once per row of a bench. A sequence classifier's head is new by design, so the harness
asks for the same facts (``output_loading_info``) and says them in one line, the head's once per
process; the library's table is dropped unless it explains an error it raises (a shape mismatch, a
failed conversion).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from harness.inputs.tasks import TaskSpec

log = logging.getLogger(__name__)

LIBRARY_LOGGER = "transformers.modeling_utils"
NEW_HEAD = ("classifier.", "pooler.")  # what AutoModelForSequenceClassification adds to a bare encoder
_RAISED_AFTER = ("MISMATCH", "CONVERSION")  # report rows that come with an error: kept
_said: set[tuple[str, str]] = set()


class _DropLoadReport(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return "LOAD REPORT" not in text or any(status in text for status in _RAISED_AFTER)


@contextmanager
def library_load_report_silenced() -> Iterator[None]:
    logger, drop = logging.getLogger(LIBRARY_LOGGER), _DropLoadReport()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def say_what_was_new(location: str, task: TaskSpec, loading: dict[str, Any]) -> None:
    """``loading``: ``from_pretrained(..., output_loading_info=True)``'s second value."""
    missing = sorted(loading["missing_keys"])
    head = [key for key in missing if key.startswith(NEW_HEAD)]
    others = [key for key in missing if key not in head]
    if head and (location, task.name) not in _said:
        _said.add((location, task.name))
        log.info("new for %s, from random weights (the checkpoint has no head for it): %s", task.name, ", ".join(head))
    if others:
        log.warning("%s lacks %d weight(s), started from random values: %s", location, len(others), ", ".join(others))
    unused = sorted(loading["unexpected_keys"])
    if unused:
        log.info("%s: %d checkpoint tensor(s) unused by the classifier, e.g. %s", location, len(unused), unused[0])
