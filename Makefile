# MAMe transfer-learning study. `make` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
.SUFFIXES:

# The interpreter for the venv: PYTHON if given, else the first of python3, python3.13, python3.12,
# python3.11 that runs and is a supported version (3.11-3.13).
SUPPORTED_PYTHONS := 3.11 3.12 3.13
IS_SUPPORTED = $(shell $(1) -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' >/dev/null 2>&1 && echo yes)
# (chosen once: `?=` would run the probe again at every use of $(PYTHON))
ifeq ($(origin PYTHON),undefined)
PYTHON  := $(firstword $(foreach p,python3 python3.13 python3.12 python3.11,$(if $(call IS_SUPPORTED,$(p)),$(p))))
endif
PYVER   := $(if $(PYTHON),$(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null))
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMPS  := .setup-stamps
# smoke | demo | full | auto; empty: demo, or auto with DATA= (sized from the dataset and this machine)
PROFILE ?=
ONLY    ?=
# a dataset to study instead of the profile's (a folder of class folders, a folder with metadata.csv, or a CSV)
DATA    ?=
FORCE   ?=
# runs at once (default: what is fastest on this machine, docs/running.md); EXECUTOR=ray
# [RAY_ADDRESS=host:port] hands them to Ray
JOBS    ?=
EXECUTOR ?= local
RAY_ADDRESS ?=
EXEC_ARGS := $(if $(JOBS),--jobs $(JOBS)) --executor $(EXECUTOR) $(if $(RAY_ADDRESS),--address $(RAY_ADDRESS))
DATA_ARGS := $(if $(PROFILE),--profile $(PROFILE)) $(if $(DATA),--data $(DATA))
RUN_ARGS := $(DATA_ARGS) $(if $(ONLY),--only $(ONLY)) $(if $(FORCE),--force) $(EXEC_ARGS)
IS_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo yes)

# test processes side by side (pytest-xdist; a test file's tests stay in one, with its fixtures); 0 runs them in
# this process
TEST_WORKERS ?= 2

# percent of the mutants `make mutation` runs (a fixed sample, the same mutants every run; 100: all)
MUTATION_SAMPLE ?= 5
.PHONY: help setup run status check report watch share test lint docs bench gpu-check mutation clean distclean python-check

help: ## List the targets (the default)
	@echo "MAMe transfer-learning study. Variables: PROFILE=smoke|demo|full|auto (default demo; auto with DATA=), DATA=/path, ONLY=stage[/backbone], FORCE=1,"
	@echo "  JOBS=N (runs at once), EXECUTOR=local|ray, RAY_ADDRESS=host:port"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-16s %s\n", $$1, $$2}'

setup: $(STAMPS)/python $(STAMPS)/npm system-packages ## Install everything (idempotent): venv, Python deps, Jupyter kernel, npm deps, chromium

python-check: ## (part of setup) Stop with a clear message unless PYTHON is 3.11, 3.12 or 3.13
	@if [ -z "$(PYTHON)" ]; then \
	  echo "error: no supported Python found (need $(SUPPORTED_PYTHONS); python3 is $$(python3 --version 2>&1 || echo missing))." >&2; \
	  echo "       Install one (e.g. apt-get install python3.11) or name it: make $(MAKECMDGOALS) PYTHON=/path/to/python3.12" >&2; exit 1; \
	elif [ -z "$(call IS_SUPPORTED,$(PYTHON))" ]; then \
	  echo "error: PYTHON=$(PYTHON) is $$($(PYTHON) --version 2>&1); this project supports Python $(SUPPORTED_PYTHONS)." >&2; exit 1; \
	fi

# One stamp per interpreter version: switching PYTHON rebuilds the venv with it.
$(STAMPS)/python: $(STAMPS)/python-$(PYVER)
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/python-$(PYVER): pyproject.toml requirements.lock | python-check
	@if [ -x $(PY) ] && [ "$$($(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])')" != "$(PYVER)" ]; then \
	  echo "$(VENV) was made with another Python; recreating it with $(PYTHON) ($(PYVER))"; rm -rf $(VENV); fi
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements.lock -e '.[test]'
	$(PY) -m ipykernel install --sys-prefix --name mame --display-name "Python (mame)" >/dev/null
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/npm: $(wildcard report/package.json report/package-lock.json)
	@if [ -f report/package.json ]; then \
	  cd report && PUPPETEER_SKIP_DOWNLOAD=1 PUPPETEER_SKIP_CHROMIUM_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error; \
	fi
	@mkdir -p $(STAMPS) && touch $@

.PHONY: system-packages
system-packages: ## (part of setup) Debian chromium, poppler-utils and fonts for the PDF deck and browser tests
	@if command -v chromium >/dev/null 2>&1 && command -v pdftoppm >/dev/null 2>&1; then :; \
	elif [ "$(IS_ROOT)" = yes ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian packages chromium poppler-utils fonts-dejavu-core (PDF deck, browser tests)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    chromium poppler-utils fonts-dejavu-core >/dev/null; \
	else \
	  echo "note: install the Debian packages chromium, poppler-utils and fonts-dejavu-core" \
	       "(sudo apt-get install chromium poppler-utils fonts-dejavu-core) for the PDF deck and browser tests"; \
	fi

run: $(STAMPS)/python ## Run every stale run of the plan (PROFILE=, ONLY=, FORCE=1)
	$(PY) -m mame run $(RUN_ARGS)

status: $(STAMPS)/python ## Show each plan entry as done / stale / failed / missing (PROFILE=)
	@$(PY) -m mame status $(DATA_ARGS)

report: setup ## Run what is stale on PROFILE (default demo; with DATA= auto), then render report/_output/deck.html and deck.pdf
	$(PY) -m mame report $(DATA_ARGS) $(EXEC_ARGS) $(if $(CHECK),--check)

watch: setup ## Serve the deck live on http://127.0.0.1:8765 (PORT=, WATCH_HOST= to serve beyond this machine): re-rendered as runs finish or templates change; stale runs start beside it (NO_RUN=1: none)
	$(PY) -m mame report --watch $(DATA_ARGS) $(EXEC_ARGS) $(if $(PORT),--port $(PORT)) $(if $(WATCH_HOST),--host $(WATCH_HOST)) $(if $(NO_RUN),--no-run)

share: setup ## Package the deck (brought up to date, no runs), its PDF and every run's metrics.json: report/_output/share/*.zip (SITE=DIR: a static folder; NOTEBOOKS=1, MODELS=1 add those)
	$(PY) -m mame share $(DATA_ARGS) $(if $(SITE),--site $(SITE)) $(if $(NOTEBOOKS),--with-notebooks) $(if $(MODELS),--with-models)

test: setup lint ## Lint, then run the test suite (smoke profile, real papermill/Keras/pandoc/chromium; TEST_WORKERS=N processes)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

lint: $(STAMPS)/python ## ruff, and the import-linter contracts of the package layout (pyproject.toml)
	$(VENV)/bin/ruff check mame tests
	$(VENV)/bin/lint-imports --no-cache

mutation: $(STAMPS)/python ## Mutation testing of mame/engine, mame/stages and mame/models (mutmut; a fixed 5 % sample, over an hour on 2 cores; MUTATION_SAMPLE=2 in ~35 min, 100 for all: many hours); prints survivors and rates
	$(PY) -m pip install --quiet -e '.[mutation]'
	rm -rf mutants && mkdir mutants
	@echo "generating the mutants and recording which fast tests reach which function (log: mutants/run.log)"
	$(VENV)/bin/mutmut run 'mame.none-such' >mutants/run.log 2>&1 || true  # nothing matches: stops after the stats
	@test -f mutants/mutmut-stats.json || { tail -c 3000 mutants/run.log; echo "mutmut could not run the fast tests" >&2; exit 1; }
	$(PY) tests/mutation_rates.py sample $(MUTATION_SAMPLE) >mutants/sample.txt
	@echo "running $$(wc -l <mutants/sample.txt) mutants"
	$(VENV)/bin/mutmut run --max-children $$(nproc) $$(cat mutants/sample.txt) >>mutants/run.log 2>&1 || { tail -c 3000 mutants/run.log; exit 1; }
	@echo "surviving mutants (\`$(VENV)/bin/mutmut show NAME\` shows one):"
	@$(VENV)/bin/mutmut results | grep -E ": (survived|timeout)$$" || true
	@$(PY) tests/mutation_rates.py report $(VENV)/bin/mutmut

docs: $(STAMPS)/python ## Regenerate the plan's JSON Schema, its key reference experiments/plan-keys.md, and the GPU estimates in docs/estimates.md
	$(PY) -m mame.stages.support.notebook_cells
	$(PY) -m mame.engine.plan.reference
	$(PY) -m mame estimate --profile full --gpus 1,2,4,8 --needs --write docs/estimates.md >/dev/null

check: $(STAMPS)/python ## Check experiments/plan.yaml (schema, names, notebook parameters, every profile) without running anything
	$(PY) -m mame check

bench: $(STAMPS)/python ## Speed figures (per-run fixed cost of each way to start a run, decode and model images/s cold/warm, fp32/bf16, peak RSS, warm report split): docs/benchmarks.md + runs/bench/*.json; ~10 min on 2 cores. SCALE=1 instead: each step's time and memory at 1k-37k images of a full-size synthetic MAMe (made in data/like-mame, ~10 min, 0.6 GB): docs/scale.md; ~30 min more
	$(if $(filter 1,$(SCALE)),$(PY) -m mame.bench.scale,$(PY) -m mame.bench)

gpu-check: $(STAMPS)/python ## On a GPU machine: the smoke plan in both shapes on the GPU (each run's metrics must say TensorFlow saw it) and the fixed vs variable shape figures at R65k, one summary table; ~8 min on one GPU
	$(PY) -m mame.bench.gpu_check

clean: ## Remove generated data, the decoded-image cache, report outputs and caches (keeps runs/ and the venv)
	rm -rf data/synthetic data/cache data/datasets report/_generated report/_output .pytest_cache
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +

distclean: clean ## Also remove runs/ and runs-*/ (other datasets' runs and report-*/ decks), the venv, node_modules and setup stamps
	rm -rf runs runs-* report-* $(VENV) report/node_modules $(STAMPS)
