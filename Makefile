# Quick start: `make demo`, `make test`. Both create .venv when missing and install byol into it.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint format install docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,docs]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m byol.demo

lint: $(STAMP)
	$(BIN)/ruff check byol tests benchmarks
	$(BIN)/ruff format --check byol tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format byol tests benchmarks
	$(BIN)/ruff check --fix byol tests benchmarks

# The documentation site (mkdocs.yml): warnings, broken links among its pages included, are errors.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true $(BIN)/mkdocs build --strict --quiet --site-dir build/site

# Two workers, a test file each at a time (session fixtures are per worker: a file's tests share them);
# tests/helpers.py gives each worker its share of the cores.
test: lint docs
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=15

# For iterating: everything but the tests marked slow (real training runs, child processes, compiles).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder -m "not slow" --durations=10

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
