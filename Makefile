# storm_bt: two commands on a fresh machine, `make run` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# the test and grid extras (pytest, Ray) on top: `make run` does not wait for them
DEV    := $(VENV)/.installed-dev

.PHONY: run test bench venv clean

venv: $(DEV)

# torch is installed first, pinned, so that pip never resolves a bare `torch` (a CUDA build).
$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e .
	touch $(STAMP)

$(DEV): $(STAMP)
	$(PY) -m pip install -q -e '.[dev,ray]'
	touch $(DEV)

run: $(STAMP)
	$(PY) -m storm_bt.backtest portfolio

test: $(DEV)
	$(PY) -m pytest -q

bench: $(DEV)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs .cache *.egg-info
