"""A damaged checkpoint never blocks a run: it is named in one line, set aside, and the run goes on
from an earlier complete checkpoint or from scratch."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from harness.checkpoints import MARKER
from harness.lifecycle import run as run_lifecycle
from tests.conftest import compose

AFLORA = ["task=rte", "model=tiny-bert", "method=aflora", "debug=default", "method.t_i_steps=2", "method.t_f_steps=2"]


@pytest.fixture(scope="module")
def killed(tmp_path_factory, glue_dir) -> Path:
    """A run killed after its last checkpoint was marked complete, before its result was written."""
    run_dir = tmp_path_factory.mktemp("killed") / "run"
    assert run_lifecycle(compose([*AFLORA, f"data.dir={glue_dir}", "train.keep_checkpoints=true"]), run_dir) == 0
    (run_dir / "result.json").unlink()
    return run_dir


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x80\x02 not a pickle at all" * 10)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGE = {
    "optimizer.pt": _garbage,
    "adapter_model.safetensors": _truncate,
    "aflora_freezer.pt": _garbage,
    "trainer_state.json": _truncate,
}


@pytest.mark.parametrize("name", sorted(DAMAGE))
def test_a_damaged_checkpoint_is_set_aside_and_the_run_starts_over(tmp_path, killed, glue_dir, caplog, name):
    run_dir = tmp_path / "run"
    shutil.copytree(killed, run_dir)
    (checkpoint,) = run_dir.glob("checkpoint-*")
    DAMAGE[name](checkpoint / name)
    with caplog.at_level(logging.WARNING):
        assert run_lifecycle(compose([*AFLORA, f"data.dir={glue_dir}"]), run_dir) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "damaged" in r.getMessage()]
    assert len(warnings) == 1 and f"{checkpoint.name}: {name} is damaged" in warnings[0], warnings
    assert "\n" not in warnings[0] and "weights_only=False" not in caplog.text
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "completed" and result["runtime"]["resumed_from"] is None
    (aside,) = run_dir.glob("damaged-*")
    assert (aside / checkpoint.name / name).exists()


def test_an_earlier_complete_checkpoint_is_used_when_the_last_is_damaged(tmp_path, killed, glue_dir):
    run_dir = tmp_path / "run"
    shutil.copytree(killed, run_dir)
    (last,) = run_dir.glob("checkpoint-*")
    earlier = run_dir / "checkpoint-4"
    shutil.copytree(last, earlier)  # any complete checkpoint that loads
    assert (earlier / MARKER).exists()
    _garbage(last / "optimizer.pt")
    assert run_lifecycle(compose([*AFLORA, f"data.dir={glue_dir}"]), run_dir) == 0
    result = json.loads((run_dir / "result.json").read_text())
    assert result["runtime"]["resumed_from"].endswith("checkpoint-4")


def test_a_callback_state_that_does_not_fit_fails_once_then_the_rerun_starts_over(tmp_path, killed, glue_dir, caplog):
    import torch

    run_dir = tmp_path / "run"
    shutil.copytree(killed, run_dir)
    (checkpoint,) = run_dir.glob("checkpoint-*")
    torch.save({"version": 2, "names": ["not", "these"]}, checkpoint / "aflora_freezer.pt")  # loads, does not fit
    cfg = compose([*AFLORA, f"data.dir={glue_dir}"])
    with caplog.at_level(logging.ERROR):
        assert run_lifecycle(cfg, run_dir) == 2
    assert "the state of HarnessAFLoraFreezer does not load" in caplog.text
    assert not list(run_dir.glob("checkpoint-*")) and list(run_dir.glob("damaged-*/checkpoint-*"))
    assert run_lifecycle(cfg, run_dir) == 0
    assert json.loads((run_dir / "result.json").read_text())["status"] == "completed"
