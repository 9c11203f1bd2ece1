# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install test lint demo bench clean

install: $(VENV)/.installed

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Tests, lint and benchmarks: kaos with the test tools (Ray, moto, schemathesis...).
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

# The demo: kaos alone (the template's own packages go into the job's environment, made by
# the executor). Its own stamp, so `make demo` then `make test` still installs the test tools.
$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

lint: install
	$(BIN)/ruff check kaos tests benchmarks
	$(BIN)/ruff format --check kaos tests benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q -p no:cacheprovider

demo: $(VENV)/.runtime
	bash scripts/demo.sh

bench: install
	$(BIN)/python benchmarks/store_bench.py
	$(BIN)/python benchmarks/pipeline_bench.py
	$(BIN)/python benchmarks/cli_bench.py
	$(BIN)/python benchmarks/ui_bench.py
	$(BIN)/python benchmarks/catalog_bench.py
	$(BIN)/python benchmarks/access_bench.py
	$(BIN)/python benchmarks/serve_bench.py

clean:
	rm -rf $(VENV) build dist *.egg-info .kaos-demo
