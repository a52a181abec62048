# AFLoRA on GLUE. `make help` lists the targets. Targets that need Python set up .venv themselves.
# Variables: GLUE_DIR (a local GLUE copy in the hub layout; unset = the hub), METHOD, MODEL, SEEDS,
# LAUNCHER (a Hydra launcher preset for `glue`: slurm, local_pool, local_submitit; conf/hydra/launcher/),
# REPORT_MODEL (limit `report` to one model), TORCH_SPEC, DEMO_RUNS (where `demo` trains; the
# committed runs/ stay as they are), DEMO_TASK, STUDY / STAGE (`study`), JOBS (runs at once for `study`
# and `glue`; each gets cores / JOBS torch threads), TEST_WORKERS (pytest-xdist workers for the `test`
# targets; 0 runs the tests in this one process, e.g. to debug with pdb).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
METHOD ?= aflora
MODEL ?= minilm
SEEDS ?= 1
LAUNCHER ?=
PYTEST_ARGS ?=
# Most of the suite's CPU time goes to Python processes starting (run.py, torchrun, the pools): two
# pytest-xdist workers keep both cores of a 2-core machine busy. --dist loadfile: a test file's tests
# run on one worker, so a module fixture (torchrun's run, tests/test_reliability.py's reference runs)
# is built once, as in one process; the files go to whichever worker is free, those with most tests
# first. (Not --dist loadgroup: under pytest 9.2 it ignores xdist_group marks, pytest-xdist issue #1386.)
TEST_WORKERS ?= 2
PYTEST := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile
BENCH_ARGS ?=
# The GPU check (tools/gpu_check/): GPU_CARRY is what `gpu-wheels` fills and a device call carries (git-ignored);
# DRY_RUN=1 runs `gpu-check` on the CPU at tiny sizes; GPU_CHECK_ARGS passes options (--limit, --bundle).
GPU_CARRY ?= .gpu-carry
DRY_RUN ?=
GPU_CHECK_ARGS ?=
DEMO_RUNS ?= outputs/demo
DEMO_TASK ?= sst2
STUDY ?= minilm
STAGE ?=
JOBS ?= 2
export GLUE_DIR

.DEFAULT_GOAL := help
.PHONY: help setup test test-fast test-all demo study glue report paper-tables bench lint clean distclean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned: a bare requirement would pull a multi-GB CUDA build
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev,scale]"
	touch $@

setup: $(VENV)/.installed ## create .venv with pinned CPU torch and the project (editable, with dev tools)

test: setup ## run the test suite offline on TEST_WORKERS (2) processes (real-data tests need GLUE_DIR; slow ones are excluded)
	$(PYTEST) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure"; fi; exit $$rc

test-fast: setup ## the in-process tests alone: without the slow ones and the integration ones (run.py, torchrun, SIGKILL)
	$(PYTEST) -m "not slow and not integration" $(PYTEST_ARGS)

test-all: setup ## the test suite including tests marked slow
	$(PYTEST) -m "" $(PYTEST_ARGS)

demo: setup ## fine-tune MiniLM with AFLoRA on DEMO_TASK (sst2; rte works too) into outputs/demo (offline with GLUE_DIR) and print the result
	$(if $(GLUE_DIR),HF_HUB_OFFLINE=1) $(PY) run.py task=$(DEMO_TASK) model=minilm method=aflora seed=1 runs_dir=$(DEMO_RUNS)
	$(PY) -m harness.show $(DEMO_RUNS)/minilm/$(DEMO_TASK)/aflora/seed1/result.json

study: setup ## the MiniLM study (conf/study/STUDY.yaml), JOBS runs at once; STAGE=grid runs one stage; rerun to resume
	$(if $(GLUE_DIR),HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1) $(PY) -m harness.study conf/study/$(STUDY).yaml --jobs $(JOBS) $(if $(STAGE),--stage $(STAGE))

glue: setup ## all GLUE tasks with data for METHOD on MODEL, seeds SEEDS (e.g. SEEDS=1,2,3), JOBS runs at once (offline with GLUE_DIR)
	$(if $(GLUE_DIR),HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1) $(PY) -m harness.sweep --method $(METHOD) --model $(MODEL) --seeds $(SEEDS) --jobs $(JOBS) $(if $(LAUNCHER),--launcher $(LAUNCHER))

report: setup ## tables and figures for every model under runs/ into reports/, the GLUE table into README.md, and the paper-budget study's report
	$(PY) -m harness.report --runs runs --out reports --readme README.md $(if $(wildcard runs_grid),--grid runs_grid --evidence runs $(if $(wildcard runs_archive),--evidence runs_archive)) $(if $(REPORT_MODEL),--model $(REPORT_MODEL))
	$(if $(wildcard runs_paper_grid runs_paper_grid_fp32 runs_paper),$(PY) -m harness.report --study conf/study/minilm-paper.yaml --out reports/minilm-paper-budget)

paper-tables: setup ## print the paper's Table 1 layout with the published numbers beside ours (writes nothing)
	$(PY) -m harness.report --runs runs --paper $(if $(REPORT_MODEL),--model $(REPORT_MODEL))

RUN ?=
SEED ?= 1
.PHONY: predict submission
predict: setup ## GLUE test-set file(s) of one completed run into RUN/predictions/ (RUN=runs/minilm/rte/aflora/seed1)
	$(if $(RUN),,$(error set RUN to a completed run directory, e.g. RUN=runs/minilm/rte/aflora/seed1))
	$(if $(GLUE_DIR),HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1) $(PY) -m harness.predict $(RUN) $(if $(GLUE_DIR),--data-dir $(GLUE_DIR))

submission: setup ## zip the test predictions of MODEL's METHOD runs (seed SEED) for the GLUE server into outputs/
	$(PY) -m harness.submission $(wildcard runs/$(MODEL)/*/$(METHOD)/seed$(SEED)) --out outputs/glue-$(MODEL)-$(METHOD)-seed$(SEED).zip

bench: setup ## side-by-side step time, memory, parameters and FLOPs of every method (BENCH_ARGS=model=... device=...)
	$(PY) -m harness.bench $(BENCH_ARGS)

.PHONY: gpu-wheels gpu-check gpu-report
gpu-wheels: setup ## fill .gpu-carry/ for the GPU check: wheels for the device's Python 3.12, MiniLM in float16, GLUE
	@test -n "$(GLUE_DIR)" || { echo "make gpu-wheels: set GLUE_DIR to a local GLUE copy (hub layout)"; exit 2; }
	$(PY) -m tools.gpu_check.carry --out $(GPU_CARRY) --glue $(GLUE_DIR)

# On the GPU machine there is no network, so no `setup`: the image's python3 runs it with the carried wheels.
gpu-check: $(if $(DRY_RUN),setup) ## the prepared GPU check into reports/gpu/ and runs_gpu/ (DRY_RUN=1: CPU, tiny, a temporary folder)
	$(if $(DRY_RUN),HF_HUB_OFFLINE=1 $(PY),python3) -m tools.gpu_check $(if $(DRY_RUN),--dry-run) --carry $(GPU_CARRY) $(GPU_CHECK_ARGS)

gpu-report: setup ## tables and figures of the GPU runs (runs_gpu/) into reports/gpu/, apart from the CPU ones
	$(PY) -m harness.report --runs runs_gpu --out reports/gpu

LINTED = aflora baselines harness tools tests run.py

lint: setup ## ruff: lint rules and formatting (CI runs this before the tests)
	$(PY) -m ruff check $(LINTED)
	$(PY) -m ruff format --check $(LINTED)

clean: ## remove caches (never runs/ or reports/)
	rm -rf .pytest_cache .ruff_cache *.egg-info
	find . -name __pycache__ -type d -not -path './$(VENV)/*' -prune -exec rm -rf {} +

distclean: clean ## also remove .venv
	rm -rf $(VENV)
