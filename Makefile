# Quick start: `make demo` runs the main job end to end, `make test` runs the test suite.
# Both create .venv on first use. torch is installed as the CPU build first (pinned), so the
# `torch>=2.3` range in pyproject.toml never pulls a multi-GB CUDA build.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
TORCH_CPU ?= torch==2.13.0
STAMP   = $(VENV)/.installed

.PHONY: setup demo test bench lint docs clean toy-checkpoints

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "$(TORCH_CPU)"
	@$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/landscape demo --overwrite

test: $(STAMP)
	$(PY) -m pytest tests -rs

bench: $(STAMP)
	for f in benchmarks/bench_*.py; do $(PY) $$f || exit 1; done

# the toy checkpoints shipped in the package (landscape/examples/checkpoints): landscape demo --seed 0's two models
toy-checkpoints: $(STAMP)
	$(PY) -m landscape.examples.regenerate

lint: $(STAMP)
	$(PY) -m ruff check landscape tests benchmarks theory
	$(PY) -m ruff format --check landscape tests benchmarks theory

# the API reference, generated from the docstrings; a warning is an error (CI runs it)
docs: $(STAMP)
	$(PY) -m sphinx -W --keep-going -b html -q docs/api docs/api/_build/html

clean:
	rm -rf $(VENV) runs .pytest_cache
