# The two commands of the README's quick start, and what they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WORKDIR ?= runs/vae_digits

.PHONY: demo test benchmark clean-venv

# (Re)install when the project's dependencies change.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# Train the default VAE on the embedded digits (no download) and write its figures and report.
demo: $(VENV)/.installed
	$(PY) -m experiments.main --config experiments/configs/vae_digits.py --workdir $(WORKDIR)

# The whole test suite (what CI runs).
test: $(VENV)/.installed
	$(PY) -m pytest -q

benchmark: $(VENV)/.installed
	$(PY) -m benchmarks.throughput --all --json runs/benchmarks.json

clean-venv:
	rm -rf $(VENV)
