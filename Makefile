# egogrpo developer and user entry points. `make test` goes from a fresh machine to a green suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# torch comes first so that nothing later pulls a CUDA build onto a CPU machine.
# On a GPU machine: make setup TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.13.0
PROJECTARIA_SPEC ?= projectaria-tools==2.3.0

.PHONY: setup test test-slow test-all demo bench lint clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet $(TORCH_SPEC)
	$(PIP) install --quiet -e ".[test]"
	# projectaria-tools without its 1.5 GB of notebook dependencies; its core needs numpy only.
	$(PIP) install --quiet --no-deps $(PROJECTARIA_SPEC)
	touch $@

setup: $(VENV)/.installed

# The fast tier (every module, under 5 minutes on 2 idle cores); the slow tier is end-to-end runs and
# multi-process checks (`@pytest.mark.slow`); test-all runs both in one pytest call.
test: setup
	$(PY) -m pytest -q -m "not slow"

test-slow: setup
	$(PY) -m pytest -q -m slow

test-all: setup
	$(PY) -m pytest -q

demo: setup
	$(VENV)/bin/egogrpo demo --out egogrpo-demo --overwrite

bench: setup
	$(PY) benchmarks/run_all.py

lint: setup
	$(PIP) install --quiet ruff
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) build *.egg-info
