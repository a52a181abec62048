"""harness.study and harness.studies.pool: the study's run order, and N runs at once with cores / N threads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from harness.core.paths import REPO
from harness.execution.methods import method_names
from harness.storage import identity
from harness.storage.result_schema import FAILED
from harness.storage.results import write_result
from harness.studies import pool
from harness.studies.finished_runs import is_finished, run_dir_of
from harness.studies.pool import Run, plan_line, run_all, threads_per_job
from harness.study import study_runs
from tests.conftest import wait_for
from tests.result_fixtures import completed

STUDY = OmegaConf.create(
    {
        "model": "m",
        "seeds": [1, 2],
        "stages": {
            "grid": {"tasks": ["sst2"], "seeds": [1], "runs_dir": "g", "lr": {"lora": [1e-3, 2e-3], "full": [5e-5]}},
            "table": {"tasks": ["rte", "mrpc"], "methods": ["head", "aflora"]},
        },
    }
)


def test_stages_run_in_order_and_seed_one_of_every_cell_comes_first():
    runs = [" ".join(r.overrides) for r in study_runs(STUDY)]
    assert runs[:3] == [
        "task=sst2 model=m method=lora seed=1 train.lr=0.001 runs_dir=g",
        "task=sst2 model=m method=lora seed=1 train.lr=0.002 runs_dir=g",
        "task=sst2 model=m method=full seed=1 train.lr=5e-05 runs_dir=g",
    ]
    table = runs[3:]
    assert len(table) == 2 * 2 * 2 and all("seed=1" in r for r in table[:4]) and all("seed=2" in r for r in table[4:])
    assert [" ".join(r.overrides) for r in study_runs(STUDY, "table")] == table


def test_methods_filter_keeps_the_order(capsys):
    from harness.study import main

    assert (
        main([str(REPO / "conf" / "study" / "minilm.yaml"), "--stage", "table", "--methods", "lora,head", "--dry-run"])
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert (
        main([str(REPO / "conf" / "study" / "minilm.yaml"), "--methods", "aflora", "--tasks", "mrpc", "--dry-run"]) == 0
    )
    only = capsys.readouterr().out.splitlines()
    assert only == [f"task=mrpc model=minilm method=aflora seed={s}" for s in (1, 2, 3)] + [
        f"task=mrpc model=minilm method=aflora seed={s} train.optimizer=adamw_reference" for s in (1, 2, 3)
    ]
    assert len(lines) == 5 * 2 * 3 and lines[:2] == [
        "task=mrpc model=minilm method=head seed=1",
        "task=mrpc model=minilm method=lora seed=1",
    ]


def test_an_unknown_stage_is_refused_by_name():
    with pytest.raises(SystemExit, match="'tabel' is not a stage"):
        study_runs(STUDY, "tabel")


@pytest.mark.parametrize(("jobs", "cores", "threads"), [(1, 2, 2), (2, 2, 1), (3, 2, 1), (2, 16, 8)])
def test_each_job_gets_its_share_of_the_cores(jobs, cores, threads):
    assert threads_per_job(jobs, cores) == threads


def test_the_repository_study_lists_every_method_and_task():
    runs = study_runs(OmegaConf.load(REPO / "conf" / "study" / "minilm.yaml"), "table")
    methods = {o.split("=")[1] for r in runs for o in r.overrides if o.startswith("method=")}
    assert methods == set(method_names(variants=False)) and len(runs) == 5 * len(methods) * 3


def stand_in_run_py(folder: Path, body: str) -> Path:
    """A script the pool starts in place of run.py: ``body`` runs with ``args`` = its command line."""
    script = folder / "stand_in_run.py"
    script.write_text("import sys, time\nfrom pathlib import Path\nargs = sys.argv[1:]\n" + textwrap.dedent(body))
    return script


@pytest.mark.integration  # by the marker check's rule: it calls run_all (here run.py is replaced)
def test_each_run_is_reported_when_it_ends_and_the_failures_are_listed_in_run_order(tmp_path, monkeypatch, capsys):
    slow, quick = Run(("task=rte", "seed=1")), Run(("task=rte", "seed=2"))
    # both fail; the first listed takes a second longer
    monkeypatch.setattr(
        pool, "RUN_PY", stand_in_run_py(tmp_path, "time.sleep(1 if 'seed=1' in args else 0)\nsys.exit(3)")
    )
    monkeypatch.setattr(pool, "is_finished", lambda overrides: False)
    assert run_all([slow, quick], jobs=2, logs=tmp_path) == [slow, quick]
    progress = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert [line.rsplit(",", 1)[0] for line in progress] == [
        f"[1/2] {quick.label}: FAILED (exit 3)",
        f"[2/2] {slow.label}: FAILED (exit 3)",
    ]


@pytest.mark.integration  # by the marker check's rule: it calls run_all (here run.py is replaced)
def test_a_run_the_source_adds_when_one_ends_starts_in_the_freed_slot_beside_the_long_one(tmp_path, monkeypatch):
    """A self-extending grid hands the pool a function: when the short run ends it lists a third run,
    which must start while the long run still runs (the long one waits for it, and fails if it never
    comes, as it would with a pool that waits for the whole round)."""
    marks = tmp_path / "marks"
    marks.mkdir()
    body = f"""
        marks = Path({str(marks)!r})
        if args[1] == "seed=1":
            for _ in range(300):
                if (marks / "seed=3").exists():
                    sys.exit(0)
                time.sleep(0.1)
            sys.exit(4)
        (marks / args[1]).touch()
        """
    monkeypatch.setattr(pool, "RUN_PY", stand_in_run_py(tmp_path, body))
    monkeypatch.setattr(pool, "is_finished", lambda overrides: False)
    long, short, added = (Run(("task=rte", f"seed={seed}")) for seed in (1, 2, 3))
    calls = []

    def runs_as_they_stand() -> list[Run]:
        calls.append(sorted(p.name for p in marks.iterdir()))
        return [long, short, added] if (marks / "seed=2").exists() else [long, short]

    assert run_all(runs_as_they_stand, jobs=2, logs=tmp_path / "logs") == []
    assert calls[:2] == [[], ["seed=2"]]  # asked at the start, then as the short run ended
    assert (marks / "seed=3").exists()


@pytest.mark.integration  # by the marker check's rule: it calls run_all (here run.py is replaced)
def test_a_run_the_source_adds_starts_at_its_place_in_the_listing_not_after_the_queue(tmp_path, monkeypatch):
    """One slot; the source first lists seed 1 of a cell and seed 3 of another, and once seed 1 ends it
    lists that cell's seed 2 between them (as a table stage does once a first seed decides a rate):
    seed 2 must start before seed 3, which was queued earlier."""
    started = tmp_path / "started.txt"
    monkeypatch.setattr(pool, "RUN_PY", stand_in_run_py(tmp_path, f"open({str(started)!r}, 'a').write(args[1] + ' ')"))
    monkeypatch.setattr(pool, "is_finished", lambda overrides: False)
    first, second, third = (Run(("task=rte", f"seed={seed}")) for seed in (1, 2, 3))

    def runs_as_they_stand() -> list[Run]:
        return [first, second, third] if started.exists() else [first, third]

    assert run_all(runs_as_they_stand, jobs=1, logs=tmp_path / "logs") == []
    assert started.read_text().split() == ["seed=1", "seed=2", "seed=3"]


@pytest.mark.integration  # by the marker check's rule: it calls run_all (here run.py is replaced)
def test_a_queued_run_the_source_no_longer_lists_never_starts(tmp_path, monkeypatch, capsys):
    """One slot; once seed 1 ends the source lists seed 2 no more (as a grid does with a run a
    collapse made moot): seed 2 must not start, seed 3 must, and the pool says which run it dropped."""
    started = tmp_path / "started.txt"
    monkeypatch.setattr(pool, "RUN_PY", stand_in_run_py(tmp_path, f"open({str(started)!r}, 'a').write(args[1] + ' ')"))
    monkeypatch.setattr(pool, "is_finished", lambda overrides: False)
    first, second, third = (Run(("task=rte", f"seed={seed}")) for seed in (1, 2, 3))

    def runs_as_they_stand() -> list[Run]:
        return [first, third] if started.exists() else [first, second, third]

    assert run_all(runs_as_they_stand, jobs=1, logs=tmp_path / "logs") == []
    assert started.read_text().split() == ["seed=1", "seed=3"]
    out = capsys.readouterr().out
    assert "the finished runs make 1 moot: rte_2" in out
    assert "[2/2] rte_3: ok" in out  # the count leaves the dropped run out


def study_of_four_stand_ins(tmp_path: Path, body: str) -> tuple[subprocess.Popen, Path, Path]:
    """``harness.study`` (its own command line) on 4 runs, 2 at a time, with run.py replaced by a
    stand-in: ``body``, which touches MARK (``<tmp>/started/<its first argument>``) once it is ready
    for a SIGINT. Returns once two have: (the study's process, started/, the logs folder)."""
    started = tmp_path / "started"
    started.mkdir()
    body = f"MARK = Path({str(started)!r}) / args[0]\n" + textwrap.dedent(body)
    stand_in = stand_in_run_py(tmp_path, body)
    study = tmp_path / "four.yaml"
    stage = {"tasks": ["rte", "mrpc", "stsb", "cola"], "methods": ["lora"], "overrides": [f"runs_dir={tmp_path}"]}
    OmegaConf.save(OmegaConf.create({"model": "tiny-bert", "seeds": [1], "stages": {"table": stage}}), study)
    driver = (
        "import sys; from harness import study; from harness.studies import pool; "
        "pool.RUN_PY = sys.argv[1]; sys.exit(study.main(sys.argv[2:]))"
    )
    logs = tmp_path / "logs"
    command = [sys.executable, "-c", driver, str(stand_in), str(study), "--jobs", "2", "--logs", str(logs)]
    study_process = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    wait_for(lambda: len(list(started.iterdir())) >= 2 or study_process.poll() is not None)
    assert sorted(p.name for p in started.iterdir()) == ["task=mrpc", "task=rte"], study_process.communicate()
    return study_process, started, logs


def ctrl_c(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGINT)  # what a terminal sends: the foreground process group


def finish(process: subprocess.Popen) -> tuple[str, str]:
    try:
        return process.communicate(timeout=60)
    finally:  # a pool that went on (it started the queued runs) must not outlive the test
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


@pytest.mark.integration
def test_one_ctrl_c_stops_a_study_starts_no_queued_run_and_exits_130(tmp_path):
    on_sigint = """
        try:
            MARK.touch()
            time.sleep(120)
        except KeyboardInterrupt:
            print("interrupted; the checkpoint is kept")
            sys.exit(130)
        """
    study, started, logs = study_of_four_stand_ins(tmp_path, on_sigint)
    ctrl_c(study)
    out, err = finish(study)
    assert study.returncode == 130, out + err
    assert "Traceback" not in out + err
    assert err.splitlines() == [
        "interrupted: stopped 2 running run(s) (each log says what it kept), 2 not started; rerun the same "
        "command to resume"
    ]
    assert sorted(p.name for p in started.iterdir()) == ["task=mrpc", "task=rte"]  # the queued two never started
    for log in (logs / "four").iterdir():  # each running one got the SIGINT and said so in its log
        assert log.read_text().endswith("interrupted; the checkpoint is kept\n"), log


@pytest.mark.integration
def test_a_second_ctrl_c_kills_runs_that_do_not_stop(tmp_path):
    on_sigint = """
        import signal
        signal.signal(signal.SIGINT, lambda *_: Path(str(MARK) + ".sigint").touch())  # noted, and ignored
        MARK.touch()
        time.sleep(120)
        """
    study, started, _ = study_of_four_stand_ins(tmp_path, on_sigint)
    ctrl_c(study)
    wait_for(lambda: len(list(started.glob("*.sigint"))) == 2)  # both got the first one and go on
    assert study.poll() is None  # the pool waits for them
    ctrl_c(study)
    out, err = finish(study)
    assert study.returncode == 130 and "Traceback" not in out + err
    assert err.splitlines() == [
        "interrupted: stopped 2 running run(s), 2 killed by a second Ctrl-C (each log says what it kept), 2 not "
        "started; rerun the same command to resume"
    ]


@pytest.mark.integration
def test_two_runs_at_once_each_on_its_thread_share_and_a_failure_is_reported(glue_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GLUE_DIR", str(glue_dir))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    common = ("task=rte", "model=tiny-bert", "method=lora", "debug=default", f"runs_dir={tmp_path}")
    # The failing run is refused at composition, before run.py imports torch: about 1 CPU second
    # instead of 8, and the pool sees the same thing, a run.py that exits 2.
    runs = [Run((*common, "seed=1")), Run((*common, "seed=2")), Run((*common, "seed=3", "train.no_such_key=1"))]
    failed = run_all(runs, jobs=2, logs=tmp_path / "logs")
    assert failed == [runs[2]]
    assert "1 run(s) failed" in capsys.readouterr().out
    for seed in (1, 2):
        (path,) = (tmp_path / "tiny-bert" / "rte" / "lora" / f"seed{seed}").rglob("result.json")
        result = json.loads(path.read_text())
        assert result["status"] == "completed" and result["runtime"]["threads"] == threads_per_job(2)
    assert "train.threads=" in (tmp_path / "logs" / f"{runs[0].label}.log").read_text()

    # Run again: only the failed run starts run.py; the finished ones are stepped over.
    started = tmp_path / "started.txt"
    monkeypatch.setattr(
        pool, "RUN_PY", stand_in_run_py(tmp_path, f"Path({str(started)!r}).open('a').write(' '.join(args) + '\\n')")
    )
    assert run_all(runs, jobs=2, logs=tmp_path / "logs") == []
    assert started.read_text().splitlines() == [" ".join([*runs[2].overrides, f"train.threads={threads_per_job(2)}"])]
    assert "3 runs, 2 finished earlier; running the other 1, 2 at a time" in capsys.readouterr().out


def test_the_plan_line_says_what_is_left_and_when_nothing_is():
    logs = Path("logs/study")
    assert plan_line(201, 22, 2, 1, logs) == (
        "201 runs, 179 finished earlier; running the other 22, 2 at a time with 1 thread each; logs in logs/study/"
    )
    assert "with 2 threads each" in plan_line(4, 4, 1, 2, logs)
    assert plan_line(201, 0, 2, 1, logs) == "201 runs, all finished earlier: nothing to run."


def test_a_run_is_finished_only_with_a_completed_result_of_its_own_config(tmp_path):
    overrides = ["task=rte", "model=tiny-bert", "method=lora", "seed=1", "debug=default", f"runs_dir={tmp_path}"]
    run_dir, content = run_dir_of(overrides)
    assert run_dir == tmp_path / "tiny-bert" / "rte" / "lora" / "seed1" / "debug=default"  # run.py's layout
    assert not is_finished(overrides)  # nothing there yet
    write_result(run_dir, completed(status=FAILED, error="ValueError: boom"))
    identity.write_fingerprint(run_dir, content)
    assert not is_finished(overrides)  # a failed run is run again
    write_result(run_dir, completed())
    assert is_finished(overrides)
    assert not is_finished([*overrides, "force=true"])  # retrains on purpose
    assert not is_finished([*overrides[:-1], f"runs_dir={tmp_path / 'elsewhere'}"])
    identity.write_fingerprint(run_dir, {**content, "train.lr": content["train.lr"] * 2})
    assert not is_finished(overrides)  # another config's result: run.py refuses it, naming the keys
    assert not is_finished([*overrides, "train.no_such_key=1"])  # does not compose: run.py says why


def test_status_says_where_each_run_stands_from_its_run_directory(tmp_path, capsys):
    from harness.storage.checkpoint_manifest import MARKER
    from harness.study import main

    study = {
        "model": "tiny-bert",
        "seeds": [1],
        "overrides": ["debug=default", f"runs_dir={tmp_path / 'runs'}"],
        "stages": {"table": {"tasks": ["rte"], "methods": ["lora", "aflora", "elora", "vera", "head", "full"]}},
    }
    OmegaConf.save(study, tmp_path / "study.yaml")
    runs = study_runs(OmegaConf.create(study))
    finished, resumable, failed, foreign, claimed, untouched = (run_dir_of(run.overrides) for run in runs)
    write_result(finished[0], completed())
    identity.write_fingerprint(*finished)
    for step, epoch, marked in ((10, 1.0, True), (20, 2.0, False)):  # the newer one was cut off while saving
        checkpoint = resumable[0] / f"checkpoint-{step}"
        checkpoint.mkdir(parents=True)
        (checkpoint / "trainer_state.json").write_text(json.dumps({"epoch": epoch, "num_train_epochs": 4}))
        if marked:
            (checkpoint / MARKER).write_text(f"{step}\n")
    identity.write_fingerprint(*resumable)
    write_result(failed[0], completed(status=FAILED, error="ValueError: boom\nand a traceback"))
    identity.write_fingerprint(*failed)
    write_result(foreign[0], completed())
    identity.write_fingerprint(foreign[0], {**foreign[1], "train.lr": foreign[1]["train.lr"] * 2})
    identity.write_fingerprint(*claimed)

    assert main([str(tmp_path / "study.yaml"), "--status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    commands = [" ".join(run.overrides) for run in runs]
    assert [line.endswith(f"  {command}") for line, command in zip(lines, commands, strict=False)] == [True] * 6
    assert [line.removesuffix(command).rstrip() for line, command in zip(lines, commands, strict=False)] == [
        "finished",
        "epoch 1 of 4 saved",
        "failed: ValueError: boom",
        "refused: holds another config's result (run.py names the keys)",
        "started, no epoch saved yet",
        "not started",
    ]
    assert lines[6:] == ["6 runs: 1 finished, 1 partly trained, 1 failed, 2 not started, 1 refused"]
    assert not untouched[0].exists()  # --status writes nothing
