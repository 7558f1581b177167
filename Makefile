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
# --no-compile: `make run` does not wait for pip to byte-compile every installed module (about
# a minute on 2 cores); Python compiles what it imports, when it imports it.
$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --no-compile torch==2.13.0
	$(PY) -m pip install -q --no-compile -e .
	touch $(STAMP)

# The test run starts many Python processes: byte-compile the packages `make run` left
# uncompiled, once, in parallel. compileall exits 1 on torch's Python-3.12-only test file
# (pip skips it the same way), hence `|| true`: this only warms the cache.
$(DEV): $(STAMP)
	$(PY) -m pip install -q -e '.[dev,ray]'
	$(PY) -m compileall -q -j 0 $(VENV)/lib > /dev/null 2>&1 || true
	touch $(DEV)

run: $(STAMP)
	$(PY) -m storm_bt.backtest portfolio

test: $(DEV)
	$(PY) -m pytest -q

bench: $(DEV)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs .cache *.egg-info
