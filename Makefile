# `make demo` and `make test` work on a fresh clone: they create .venv when it is missing.
# As root, the tests run what depends on file permissions as `nobody`, with the venv's python
# (tests/helpers.py): so the venv is made from the first python3 on the PATH that `nobody` can run
# (a pyenv under /root is out of its reach). PYTHON=... chooses another.
ifeq ($(origin PYTHON),undefined)
  ifeq ($(shell id -u),0)
    PYTHON := $(or $(shell setpriv --reuid=nobody --regid=$$(id -g nobody) --clear-groups sh -c 'command -v python3' 2>/dev/null),python3)
  else
    PYTHON := python3
  endif
endif
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

KAGEXP := ../$(BIN)/kagexp
IRIS_PACK := data/output/packs/iris-exp001-run002
# `unshare -n` (the network off) needs root; as another user the rehearsal runs with the network on
REHEARSE_GUARD := $(if $(filter 0,$(shell id -u)),,--allow-network)

demo: $(STAMP)
	cd example-exp-iris && ../$(BIN)/python exp/exp001/exp.py
	cd example-exp-iris && $(KAGEXP) run exp002
	@echo; echo "== one run folder: data/output/exp/exp001/run002"
	@ls -A example-exp-iris/data/output/exp/exp001/run002
	@echo; echo "== kagexp ls"
	@cd example-exp-iris && $(KAGEXP) ls
	@echo; echo "== kagexp runs --sort -cv"
	@cd example-exp-iris && $(KAGEXP) runs --sort -cv
	@echo; echo "== kagexp diff exp001 exp002"
	@cd example-exp-iris && $(KAGEXP) diff exp001 exp002
	@echo; echo "== kagexp rerun --check: every iris run again, from its code snapshot"
	cd example-exp-iris && $(KAGEXP) rerun exp001 --check
	cd example-exp-iris && $(KAGEXP) rerun exp002 --check
	@echo; echo "== cancer: every fold saved (OOF, test, AUC); runs list the mean AUC over folds and its std"
	cd example-exp-cancer && ../$(BIN)/python exp/exp001/exp.py
	cd example-exp-cancer && $(KAGEXP) run exp002
	@cd example-exp-cancer && $(KAGEXP) runs --sort -auc
	@echo; echo "== kagexp blend --method hill: the best run of each cancer experiment, made on the same folds"
	cd example-exp-cancer && $(KAGEXP) blend --method hill \
	  $$($(KAGEXP) runs exp001 --sort -auc --limit 1 --format csv | sed -n 2p | cut -d, -f1) \
	  $$($(KAGEXP) runs exp002 --sort -auc --limit 1 --format csv | sed -n 2p | cut -d, -f1)
	@echo; echo "== kagexp pack exp001/run002: a Kaggle dataset with an offline inference kernel"
	rm -rf example-exp-iris/$(IRIS_PACK)
	cd example-exp-iris && $(KAGEXP) pack exp001/run002 --dataset you/iris-exp001-run002 -o $(IRIS_PACK)
	@echo; echo "== kagexp rehearse: that kernel here, network off (as root), read-only input, fresh venv"
	cd example-exp-iris && $(KAGEXP) rehearse $(IRIS_PACK) --scale 10 $(REHEARSE_GUARD)
	cmp example-exp-iris/$(IRIS_PACK)/rehearsal/working/submission.csv \
	    example-exp-iris/data/output/exp/exp001/run002/submission.csv
	@echo "the rehearsal's submission.csv is identical to the training run's"

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check kagexp tests bench example-exp-iris
	$(BIN)/ruff format --check kagexp tests bench example-exp-iris

format: $(STAMP)
	$(BIN)/ruff check --fix kagexp tests bench example-exp-iris
	$(BIN)/ruff format kagexp tests bench example-exp-iris

# bench/peers.py runs in its own virtualenv: kagexp plus the peers it is measured against, which
# are not kagexp's dependencies. Made from PyPI when missing; no network when the benchmarks run.
BENCH_VENV := .venv-bench
BENCH_BIN := $(BENCH_VENV)/bin
BENCH_STAMP := $(BENCH_VENV)/.installed
BENCH_PEERS := 'hydra-core>=1.3.2' 'mlflow-skinny>=2.10' 'sacred>=0.8.5'

$(BENCH_BIN)/python:
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_BIN)/python -m pip install -q --upgrade pip

$(BENCH_STAMP): pyproject.toml | $(BENCH_BIN)/python
	$(BENCH_BIN)/python -m pip install -q -e . $(BENCH_PEERS)
	touch $(BENCH_STAMP)

bench: $(STAMP) $(BENCH_STAMP)
	$(BIN)/python bench/bookkeeping.py
	if [ -d /dev/shm ]; then $(BIN)/python bench/bookkeeping.py --dir /dev/shm; fi
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/new_vs_cp.py
	$(BENCH_BIN)/python bench/peers.py

clean:
	rm -rf example-exp-iris/data/output .pytest_cache
