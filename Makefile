# Two entry points, each doing its own set-up from a fresh clone:
#   make demo   creates .venv, installs lamina, runs the main job: FCN on GunPoint (DEMO_EPOCHS epochs)
#   make test   creates .venv with the dev extras, runs the whole suite
PYTHON ?= python3
VENV   := .venv
PIP    := $(VENV)/bin/pip install -q -c constraints.txt
PY     := $(VENV)/bin/python
DEMO_EPOCHS ?= 500

.PHONY: demo test lint bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip

$(VENV)/.demo: pyproject.toml constraints.txt | $(VENV)/bin/python
	$(PIP) -e '.[datasets,plot]'
	touch $@

$(VENV)/.dev: pyproject.toml constraints.txt | $(VENV)/bin/python
	$(PIP) -e '.[dev]'
	touch $@ $(VENV)/.demo

demo: $(VENV)/.demo
	$(VENV)/bin/lamina tsc GunPoint --model fcn --epochs $(DEMO_EPOCHS) --out out/demo

test: $(VENV)/.dev
	KERAS_BACKEND=torch $(PY) -m pytest -n 2 tests

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check src tests bench examples scripts

bench: $(VENV)/.dev
	$(PIP) jax && $(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
