PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck clean

run: $(STAMP)
	$(BIN)/python -m app demo

test: $(STAMP)
	$(BIN)/ruff check app tests
	$(BIN)/ruff format --check app tests
	$(BIN)/mypy
	$(BIN)/pytest

.PHONY: soak
# 60 s of load on the gateway while interview-service restarts; see soak/run.py.
soak: $(STAMP)
	$(BIN)/python -m soak

.PHONY: faults
# Every upstream fault through a GET and a keyed POST; rewrites docs/faults.md.
faults: $(STAMP)
	$(BIN)/python -m tests.faults.report

.PHONY: bench
BENCH_STAMP := $(VENV)/.bench-installed
# Every benchmark side by side on loopback in under 5 minutes; rewrites
# BENCHMARKS.md and bench/results.json. Without wrk, which apt installs when it
# can, the gateway is loaded by bench/loadgen.py instead.
bench:
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory $(STAMP) $(BENCH_STAMP) \
	&& { command -v wrk >/dev/null 2>&1 \
		|| { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; } \
		|| echo "wrk could not be installed; the gateway benchmark uses bench/loadgen.py"; } \
	&& $(BIN)/python -m bench; \
	status=$$?; \
	echo "make bench took $$(( $$(date +%s) - start )) s"; \
	exit $$status

.PHONY: bench-instructions
# Instructions per call of each layer of a proxy read, counted by callgrind;
# writes bench/instructions.json, which make bench renders into BENCHMARKS.md.
bench-instructions: $(STAMP) $(BENCH_STAMP)
	@command -v valgrind >/dev/null 2>&1 \
		|| { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind; }
	$(BIN)/python -m bench.instructions

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $(BENCH_STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
