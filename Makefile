# MAMe transfer-learning study. `make` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
.SUFFIXES:

PYTHON  ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMPS  := .setup-stamps
PROFILE ?= demo
ONLY    ?=
FORCE   ?=
RUN_ARGS := --profile $(PROFILE) $(if $(ONLY),--only $(ONLY)) $(if $(FORCE),--force)
IS_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo yes)

.PHONY: help setup run status report test bench clean distclean

help: ## List the targets (the default)
	@echo "MAMe transfer-learning study. Variables: PROFILE=smoke|demo|full (default demo), ONLY=stage[/backbone], FORCE=1"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-10s %s\n", $$1, $$2}'

setup: $(STAMPS)/python $(STAMPS)/npm system-packages ## Install everything (idempotent): venv, Python deps, Jupyter kernel, npm deps, chromium

$(STAMPS)/python: pyproject.toml requirements.lock
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
	@$(PY) -m mame status --profile $(PROFILE)

report: setup ## Run what is stale on PROFILE (default demo), then render report/_output/deck.html and deck.pdf
	$(PY) -m mame report --profile $(PROFILE) $(if $(CHECK),--check)

test: setup ## Run the test suite (smoke profile, real papermill/Keras/pandoc/chromium)
	$(PY) -m pytest -q

bench: $(STAMPS)/python ## Print speed figures (runner overhead with nothing stale)
	$(PY) -m mame.bench

clean: ## Remove generated data, report outputs and caches (keeps runs/ and the venv)
	rm -rf data/synthetic report/_generated report/_output .pytest_cache
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +

distclean: clean ## Also remove runs/, the venv, node_modules and setup stamps
	rm -rf runs $(VENV) report/node_modules $(STAMPS)
