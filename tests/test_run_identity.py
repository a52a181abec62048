"""A run directory belongs to one config: distinct configs get distinct directories, a checkpoint
or result of another config is refused, force=true retrains from scratch and loses nothing."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from harness.core.errors import ConfigError
from harness.execution.lifecycle import run as run_lifecycle
from harness.report.aggregate import score_stats, scores_frame
from harness.report.load import load_runs
from harness.storage import identity
from harness.storage.rundir import locked, set_aside
from tests.conftest import compose
from tests.test_report import result as fake_result
from tests.test_report import write as write_fake

TINY = ["task=rte", "model=tiny-bert", "method=lora", "debug=default"]


def tiny(glue_dir: Path, *extra: str):
    return compose([*TINY, f"data.dir={glue_dir}", *extra])


def listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory, glue_dir) -> Path:
    """A completed tiny run that kept its checkpoints (as a run killed before the clean-up would)."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    assert run_lifecycle(tiny(glue_dir, "train.keep_checkpoints=true"), run_dir) == 0
    return run_dir


@pytest.fixture
def run_dir(tmp_path, finished) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    return copy


# --- the directory -----------------------------------------------------------------------------


def test_variant_names_only_the_overrides_that_change_what_is_trained():
    study = ["task=rte", "model=minilm", "method=head", "seed=3", "train.threads=1", "train.device=cpu"]
    quiet = ["runs_dir=x", "force=true", "data.dir=/g", "train.logging_steps=5", "train.keep_checkpoints=true"]
    assert identity.variant([*study, *quiet, "train.report_to=none"]) == ""
    assert identity.variant(["train.lr=1e-2", "seed=2", "debug=default"]) == "debug=default,train.lr=0.01"
    assert identity.variant(["model.path=/a/b"]) != identity.variant(["model.path=/a/c"])
    assert "/" not in identity.variant(["model.path=/a/b"])
    assert len(identity.variant([f"method.k{i}=value{i}" for i in range(40)])) < 130


@pytest.fixture
def hydra_config():
    """``set(cfg)``: Hydra's global HydraConfig as run.py's job has it, unset again after the test.
    Left set, it would tell the later tests of this process that run.py started their in-process runs
    (harness/storage/model_card.py names the command from it)."""
    from hydra.core.hydra_config import HydraConfig

    before = HydraConfig.instance().cfg
    yield HydraConfig.instance().set_config
    HydraConfig.instance().cfg = before


def test_the_study_command_keeps_its_directory(hydra_config):
    from hydra import compose as hydra_compose

    compose([])  # initialises Hydra once for the session
    study = ["task=rte", "model=minilm", "method=lora", "seed=3", "train.threads=1", "runs_dir=runs"]
    for extra, expected in (
        ([], "runs/minilm/rte/lora/seed3"),
        (["train.lr=0.01"], "runs/minilm/rte/lora/seed3/train.lr=0.01"),
    ):
        cfg = hydra_compose(config_name="config", overrides=[*study, *extra], return_hydra_config=True)
        hydra_config(cfg)
        assert cfg.hydra.run.dir == expected


@pytest.mark.parametrize("multirun", [False, True], ids=["run", "-m"])
@pytest.mark.parametrize("spelling", ["1e-2", "0.01", "1.0e-2"])
def test_one_config_trains_in_one_folder_however_its_values_are_spelled(hydra_config, spelling, multirun):
    from hydra import compose as hydra_compose
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    compose([])  # initialises Hydra once for the session
    overrides = ["task=rte", "model=minilm", "method=lora", "seed=3", "runs_dir=runs", f"train.lr={spelling}"]
    if multirun:  # what Hydra's sweeper hands the one job of `python run.py -m <overrides>`
        ((overrides,),) = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(overrides), None)
    cfg = hydra_compose(config_name="config", overrides=overrides, return_hydra_config=True)
    hydra_config(cfg)
    folder = f"{cfg.hydra.sweep.dir}/{cfg.hydra.sweep.subdir}" if multirun else cfg.hydra.run.dir
    assert folder == "runs/minilm/rte/lora/seed3/train.lr=0.01"


def test_the_report_reads_a_folder_in_another_spelling_as_the_same_config(tmp_path):
    for seed, folder in ((1, "train.lr=1e-3"), (2, "train.lr=0.001")):  # as run.py and run.py -m named them
        data = fake_result("rte", "lora", seed, {"accuracy": 0.6 + seed / 10}, config={"train": {"lr": 0.001}})
        path = write_fake(tmp_path, data)
        (path.parent / folder).mkdir()
        path.rename(path.parent / folder / "result.json")
    stats = score_stats(scores_frame(load_runs(tmp_path)))
    assert stats.loc[("lora [train.lr=0.001]", "rte", "accuracy"), "n"] == 2


@pytest.mark.parametrize(
    "args",
    [
        ("../x", "rte", "lora", 1, []),
        ("m", "a/b", "lora", 1, []),
        ("m", "rte", "..", 1, []),
        ("m", "rte", "lora", -1, []),
        ("m", "rte", "lora", "abc", []),
        ("m", "rte", "lora", 1, ["+train.lrr=1e-3"]),
        ("m", "rte", "lora", 1, ["~train.lr"]),
    ],
)
def test_names_that_leave_runs_dir_and_added_keys_are_refused(args):
    with pytest.raises(ConfigError):
        identity.run_subdir(*args)


@pytest.mark.integration
def test_a_sweep_over_any_key_gives_one_result_per_value_and_lists_its_failures(tmp_path, glue_dir, warm_cli):
    proc = warm_cli(["-m", *TINY, f"runs_dir={tmp_path}", "train.lr=1e-4,-1,1e-2"], glue_dir)
    assert proc.returncode == 2, proc.stderr[-3000:]
    seed_dir = tmp_path / "tiny-bert" / "rte" / "lora" / "seed1"
    results = {p.parent.name: json.loads(p.read_text()) for p in seed_dir.glob("*/result.json")}
    assert sorted(results) == ["debug=default,train.lr=0.0001", "debug=default,train.lr=0.01"]  # -1: refused
    assert results["debug=default,train.lr=0.01"]["config"]["train"]["lr"] == 0.01
    assert results["debug=default,train.lr=0.0001"]["config"]["train"]["lr"] == 0.0001
    refused = seed_dir / "debug=default,train.lr=-1"
    assert "train.lr = -1.0 must be positive" in (refused / "run.log").read_text()  # the job's log, no result
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("1 run(s) of the sweep failed") and "train.lr=-1" in last


def test_the_report_groups_seeds_of_one_config_and_keeps_configs_apart(tmp_path):
    scores = {"accuracy": 0.6}
    write_fake(tmp_path, fake_result("rte", "lora", 1, scores))
    write_fake(tmp_path, fake_result("rte", "lora", 2, scores))
    for seed in (1, 2):  # one recorded variant, one known only from its folder (no 'variant' field)
        extra = {"variant": "train.lr=0.01"} if seed == 1 else {}
        config = {"train": {"lr": 0.01}}  # another config than the default's: another fingerprint
        path = write_fake(tmp_path, fake_result("rte", "lora", seed, {"accuracy": 0.7}, config=config, **extra))
        moved = path.parent / "train.lr=0.01" / "result.json"
        moved.parent.mkdir()
        path.rename(moved)
        write_fake(tmp_path, fake_result("rte", "lora", seed, scores))  # the default config's own seed
    stats = score_stats(scores_frame(load_runs(tmp_path)))
    assert stats.loc[("lora", "rte", "accuracy"), "n"] == 2
    assert stats.loc[("lora [train.lr=0.01]", "rte", "accuracy"), "n"] == 2
    assert stats.loc[("lora [train.lr=0.01]", "rte", "accuracy"), "mean"] == pytest.approx(70.0)


# --- refusal on another config -----------------------------------------------------------------


def _rewrite_fingerprint(run_dir: Path, **changes) -> None:
    path = run_dir / identity.FINGERPRINT_FILE
    payload = json.loads(path.read_text())
    payload["content"].update(changes)
    path.write_text(json.dumps(payload))


def test_a_result_of_another_config_is_refused_naming_the_keys(run_dir, glue_dir, caplog):
    _rewrite_fingerprint(run_dir, **{"train.lr": 0.01})
    before = listing(run_dir)
    with caplog.at_level(logging.ERROR):
        assert run_lifecycle(tiny(glue_dir), run_dir) == 2
    assert "train.lr: 0.01 -> 0.0005" in caplog.text and "force=true" in caplog.text
    assert listing(run_dir) == before


def test_excluded_keys_do_not_count_as_another_config(run_dir, glue_dir, caplog):
    with caplog.at_level(logging.INFO):
        assert (
            run_lifecycle(tiny(glue_dir, "train.threads=1", "train.logging_steps=7", "runs_dir=elsewhere"), run_dir)
            == 0
        )
    assert "already holds a completed result" in caplog.text


def test_a_legacy_result_counts_as_completed_only_for_its_config(run_dir, glue_dir, caplog):
    (run_dir / identity.FINGERPRINT_FILE).unlink()  # a run directory from before fingerprints
    with caplog.at_level(logging.INFO):
        assert run_lifecycle(tiny(glue_dir), run_dir) == 0
    assert "already holds a completed result" in caplog.text
    assert run_lifecycle(tiny(glue_dir, "train.max_eval_samples=8"), run_dir) == 2
    assert "train.max_eval_samples: 16 -> 8" in caplog.text


def test_a_legacy_checkpoint_resumes_only_for_its_config(run_dir, glue_dir, caplog):
    original = json.loads((run_dir / "result.json").read_text())
    (run_dir / identity.FINGERPRINT_FILE).unlink()
    (run_dir / "result.json").unlink()  # killed before its result: checkpoints and .hydra/config.yaml
    with caplog.at_level(logging.ERROR):
        assert run_lifecycle(tiny(glue_dir, "train.lr=0.01"), run_dir) == 2
    assert "train.lr: 0.0005 -> 0.01" in caplog.text
    assert not (run_dir / "result.json").exists()

    assert run_lifecycle(tiny(glue_dir), run_dir) == 0
    resumed = json.loads((run_dir / "result.json").read_text())
    assert resumed["runtime"]["resumed_from"].endswith("checkpoint-8")
    assert resumed["metrics"]["per_epoch"] == original["metrics"]["per_epoch"]
    assert (run_dir / identity.FINGERPRINT_FILE).exists()


# --- force=true --------------------------------------------------------------------------------


def test_force_retrains_from_scratch_and_sets_everything_aside(run_dir, glue_dir):
    (run_dir / "result.json").unlink()  # a killed run: force must not resume it
    before = listing(run_dir)
    assert run_lifecycle(tiny(glue_dir, "force=true"), run_dir) == 0
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "completed" and result["runtime"]["resumed_from"] is None
    (aside,) = run_dir.glob("previous-*")
    for name, data in before.items():
        if name.startswith(("checkpoint-", "best/")) or name == identity.FINGERPRINT_FILE:
            assert (aside / name).read_bytes() == data, name


@pytest.mark.parametrize("bad", ["train.lr=-1", "method.r=0", "train.epochs=0"])  # wrong types: refused composing
def test_force_with_a_bad_override_changes_nothing(run_dir, glue_dir, bad):
    before = listing(run_dir)
    assert run_lifecycle(tiny(glue_dir, "force=true", bad), run_dir) == 2
    assert listing(run_dir) == before


def test_force_keeps_an_earlier_result_and_two_set_asides_never_collide(run_dir, glue_dir):
    before = (run_dir / "result.json").read_bytes()
    assert run_lifecycle(tiny(glue_dir, "force=true"), run_dir) == 0
    (aside,) = run_dir.glob("previous-*")
    assert (aside / "result.previous.json").read_bytes() == before
    for n in range(3):  # in the same second
        (run_dir / f"x{n}").write_text(str(n))
        set_aside(run_dir, [run_dir / f"x{n}"])
    kept = sorted(p.read_text() for p in run_dir.glob("previous-*/x*"))
    assert kept == ["0", "1", "2"]


# --- one process per run directory, and no leftovers -------------------------------------------


def test_a_second_process_on_a_run_directory_refuses(run_dir, glue_dir, caplog):
    (run_dir / "result.json").unlink()
    before = listing(run_dir)
    with locked(run_dir), caplog.at_level(logging.ERROR):
        assert run_lifecycle(tiny(glue_dir), run_dir) == 2
    assert "in use by another process" in caplog.text
    assert listing(run_dir) == before


def test_leftovers_of_a_killed_clean_up_are_removed(run_dir, glue_dir):
    (run_dir / ".result.json.tmp1234").write_text("{")
    assert list(run_dir.glob("checkpoint-*"))
    assert run_lifecycle(tiny(glue_dir), run_dir) == 0
    assert not list(run_dir.glob("checkpoint-*")) and not list(run_dir.glob(".result.json.*"))
