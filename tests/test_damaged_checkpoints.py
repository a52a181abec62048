"""A damaged checkpoint never blocks a run: it is named in one line, set aside, and the run goes on
from an earlier complete checkpoint or from scratch. A file missing from a complete checkpoint is
damage too (its manifest lists it): never a resume without it, never a traceback."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from harness.execution.lifecycle import run as run_lifecycle
from harness.storage.checkpoint_manifest import MARKER
from tests.conftest import compose

AFLORA = ["task=rte", "model=tiny-bert", "method=aflora", "debug=default", "method.t_i=2steps", "method.t_f=2steps"]


@pytest.fixture(scope="module")
def killed(tmp_path_factory, glue_dir) -> Path:
    """A run killed after its last checkpoint was marked complete, before its result was written
    (which is kept aside as ``uninterrupted.json``)."""
    run_dir = tmp_path_factory.mktemp("killed") / "run"
    assert run_lifecycle(compose([*AFLORA, f"data.dir={glue_dir}", "train.keep_checkpoints=true"]), run_dir) == 0
    (run_dir / "result.json").rename(run_dir.parent / "uninterrupted.json")
    return run_dir


def _numbers(result: dict) -> dict:
    """What a lost file would change: every epoch's metrics and the trainable-parameter counts."""
    epochs = [{k: v for k, v in e.items() if not k.startswith("eval_seconds")} for e in result["metrics"]["per_epoch"]]
    return {"epochs": epochs, "params": result["params"], "freezing": result["freezing"]}


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

    from harness.storage.checkpoint_manifest import write_manifest

    run_dir = tmp_path / "run"
    shutil.copytree(killed, run_dir)
    (checkpoint,) = run_dir.glob("checkpoint-*")
    torch.save({"version": 2, "names": ["not", "these"]}, checkpoint / "aflora_freezer.pt")  # loads, does not fit
    write_manifest(checkpoint, int(checkpoint.name.removeprefix("checkpoint-")))  # as written by another version
    cfg = compose([*AFLORA, f"data.dir={glue_dir}"])
    with caplog.at_level(logging.ERROR):
        assert run_lifecycle(cfg, run_dir) == 2
    assert "the state of HarnessAFLoraFreezer does not load" in caplog.text
    assert not list(run_dir.glob("checkpoint-*")) and list(run_dir.glob("damaged-*/checkpoint-*"))
    assert run_lifecycle(cfg, run_dir) == 0
    assert json.loads((run_dir / "result.json").read_text())["status"] == "completed"


# Each file a resume reads, the Trainer's and the callbacks': without the manifest the Trainer
# skipped the first four and the callbacks their own state, and the last two were a traceback.
LOST = ["optimizer.pt", "scheduler.pt", "rng_state.pth", "param_tracker.json", "trainer_state.json"]
LOST += ["adapter_model.safetensors"]


@pytest.mark.parametrize("name", LOST)
def test_a_file_lost_from_a_complete_checkpoint_sets_it_aside_and_the_run_restarts(
    tmp_path, killed, glue_dir, caplog, name
):
    run_dir = tmp_path / "run"
    shutil.copytree(killed, run_dir)
    (checkpoint,) = run_dir.glob("checkpoint-*")
    (checkpoint / name).unlink()
    with caplog.at_level(logging.WARNING):
        assert run_lifecycle(compose([*AFLORA, f"data.dir={glue_dir}"]), run_dir) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "missing" in r.getMessage()]
    assert len(warnings) == 1 and f"{checkpoint.name}: {name} is missing" in warnings[0], warnings
    assert "\n" not in warnings[0]
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "completed" and result["runtime"]["resumed_from"] is None
    assert _numbers(result) == _numbers(json.loads((killed.parent / "uninterrupted.json").read_text()))
    (aside,) = run_dir.glob("damaged-*")
    assert (aside / checkpoint.name / MARKER).exists() and not (aside / checkpoint.name / name).exists()


def _without_manifest(checkpoint: Path) -> None:
    """The marker as harnesses before manifests wrote it: the step alone."""
    (checkpoint / MARKER).write_text(checkpoint.name.removeprefix("checkpoint-") + "\n")


def test_a_checkpoint_without_a_manifest_still_resumes_with_one_warning(tmp_path, killed, glue_dir, caplog):
    run_dir = tmp_path / "run"
    shutil.copytree(killed, run_dir)
    (checkpoint,) = run_dir.glob("checkpoint-*")
    _without_manifest(checkpoint)
    with caplog.at_level(logging.WARNING):
        assert run_lifecycle(compose([*AFLORA, f"data.dir={glue_dir}"]), run_dir) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [
        f"checkpoint {checkpoint} has no manifest (marked by an older harness): only the files it holds are checked"
    ]
    assert json.loads((run_dir / "result.json").read_text())["runtime"]["resumed_from"] == str(checkpoint)


@pytest.mark.parametrize("name", ["trainer_state.json", "adapter_model.safetensors"])
def test_a_checkpoint_without_a_manifest_lacking_what_the_trainer_needs_is_set_aside(tmp_path, killed, glue_dir, name):
    run_dir = tmp_path / "run"
    shutil.copytree(killed, run_dir)
    (checkpoint,) = run_dir.glob("checkpoint-*")
    _without_manifest(checkpoint)
    (checkpoint / name).unlink()
    assert run_lifecycle(compose([*AFLORA, f"data.dir={glue_dir}"]), run_dir) == 0
    assert json.loads((run_dir / "result.json").read_text())["runtime"]["resumed_from"] is None
    assert list(run_dir.glob(f"damaged-*/{checkpoint.name}"))


def test_an_unreadable_marker_is_damage_named_in_one_line(tmp_path, killed, glue_dir, caplog):
    run_dir = tmp_path / "run"
    shutil.copytree(killed, run_dir)
    (checkpoint,) = run_dir.glob("checkpoint-*")
    (checkpoint / MARKER).write_text('{"step": 12, "fil')  # cut short by hand: markers are written atomically
    with caplog.at_level(logging.WARNING):
        assert run_lifecycle(compose([*AFLORA, f"data.dir={glue_dir}"]), run_dir) == 0
    assert f"{checkpoint.name}: its {MARKER} marker is not a manifest" in caplog.text
    assert json.loads((run_dir / "result.json").read_text())["runtime"]["resumed_from"] is None
