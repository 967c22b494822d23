# Two commands that work on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: setup demo test bench clean

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# The CPU build of torch lies on this machine's disk; installing it first keeps
	# transformers/peft from pulling a CUDA build of several GB.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[bench]'
	touch $(STAMP)

setup: $(STAMP)

# Whole files per worker (module fixtures computed once), the longest files first
# (tests/conftest.py: LONGEST_FIRST) rather than xdist's most-tests-first. Compiled programs
# are kept between runs in TEST_COMPILED (JAX's persistent cache, keyed by program, flags and
# versions; emptied at the start of a run once over 2 GiB): a second run loads what the first
# compiled. TEST_COMPILED=0: no cache.
TEST_COMPILED ?= $(HOME)/.cache/prefix_jax/compiled-tests
test: $(STAMP)
	PREFIX_JAX_COMPILATION_CACHE=$(TEST_COMPILED) \
	  $(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=15 tests

demo: $(STAMP)
	$(PY) -m experiments.demo --config=configs/demo.py --workdir=$${WORKDIR:-runs/demo}

bench: $(STAMP)
	$(PY) -m benchmarks.bench
	$(PY) -m benchmarks.serving
	$(PY) -m benchmarks.one_program

clean:
	rm -rf $(VENV)

# Semantic mutations of the code, each alone in a scratch copy; every one must be killed by
# its guarding tests (mutants/mutations.toml, docs/mutants.md). Not part of `make test`.
.PHONY: mutants
mutants: $(STAMP)
	$(PY) mutants/run.py

# The paper's tables on real weights at the `mini` scale (README "Reproduction"): each table's
# missing cells, then the README's verdicts from results/mini. Resumable: stop it at any time.
MINI_TABLES ?= sst2 figure4 table5 table1 methods figure3 figure5
.PHONY: mini
mini: $(STAMP)
	for t in $(MINI_TABLES); do $(PY) -m experiments.paper $$t --scale mini || exit 1; done
	$(PY) -m experiments.paper.claims --readme README.md
