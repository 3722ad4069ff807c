# The two commands of the README's quick start, and what they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WORKDIR ?= runs/vae_digits

.PHONY: demo test lint format benchmark clean-venv

# (Re)install when the project's dependencies change.  jax2onnx (the ONNX export) pins orbax-checkpoint<0.11.37,
# which it never imports; with its pins pip would downgrade the project's Orbax, so it is installed alone, and what
# it does import is in the dev extra.  The fid extra (torch, torchvision, pytorch-fid: several GB) is what the
# Inception port's parity tests compare against, so that they run here rather than skip.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,fid]'
	$(PY) -m pip install --quiet --no-deps 'jax2onnx==0.17.1'
	touch $@

# Train the default VAE on the embedded digits (no download) and write its figures and report.
demo: $(VENV)/.installed
	$(PY) -m experiments.main --config experiments/configs/vae_digits.py --workdir $(WORKDIR)

# The whole test suite (what CI runs), on every core (pytest-xdist; `pytest tests/x.py` alone runs in one process).
test: $(VENV)/.installed
	$(PY) -m pytest -q -n auto

# Formatting and lint (ruff, configured in pyproject.toml): CI fails on either.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Every config of the embedded digits (no download), each family timed in one run as its training loop runs it.
benchmark: $(VENV)/.installed
	$(PY) -m benchmarks.throughput --config $(wildcard experiments/configs/*_digits.py) --json runs/benchmarks.json

clean-venv:
	rm -rf $(VENV)
