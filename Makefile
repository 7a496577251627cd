# One entry for newcomers and CI. The venv lives outside the clone, keyed on the hash of
# the dependency files, so every clone on a machine shares it and a dependency change
# builds a fresh one. The repo itself is put on PYTHONPATH (not installed), so the venv
# never points at a stale clone.
SHELL := /bin/bash
DEPS := requirements/cpu.txt requirements/nodeps.txt pyproject.toml
VENV_KEY := $(shell cat $(DEPS) | sha256sum | cut -c1-12)
VENV ?= $(HOME)/.cache/rexbert/venv-$(VENV_KEY)
PYTHON := $(VENV)/bin/python
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export WANDB_MODE ?= offline
export TOKENIZERS_PARALLELISM := false
export OMP_NUM_THREADS ?= 2
export REXBERT_VENV_BUILT_BY_MAKE := 1

EXP ?= domain_annealing
.PHONY: venv demo experiment test test-unit test-distributed test-integration test-gpu bench sizes clean-venv

venv: $(VENV)/.complete

# The marker is written last: an interrupted install is redone from scratch next time.
# No file prerequisites on purpose: the path already carries the hash of $(DEPS), and a
# fresh clone's newer mtimes must not rebuild (and delete) a venv other clones are using.
$(VENV)/.complete:
	@echo "[rexbert] building venv $(VENV) (one-time, ~1-2 min)"
	rm -rf "$(VENV)"
	python3 -m venv "$(VENV)"
	"$(PYTHON)" -m pip install -q --upgrade pip
	"$(PYTHON)" -m pip install -q -r requirements/cpu.txt
	"$(PYTHON)" -m pip install -q --no-deps -r requirements/nodeps.txt
	touch "$@"

demo: venv  ## the main job: a tiny end-to-end run on data the package ships
	"$(PYTHON)" -m rexbert.demo

experiment: venv  ## one experiment of conf/experiment/ (make experiment EXP=objective); results in docs/results/
	"$(PYTHON)" -m rexbert experiment $(EXP) $(ARGS)

test: venv  ## every test tier, each timed
	bash scripts/run_tests.sh "$(PYTHON)"

test-unit test-distributed test-integration test-gpu: venv  ## one tier
	bash scripts/run_tests.sh "$(PYTHON)" $(@:test-%=%)

sizes: venv
	"$(PYTHON)" -m rexbert.model.sizes

bench: venv
	"$(PYTHON)" bench/micro_fwd_bwd.py

clean-venv:
	rm -rf "$(VENV)"
