#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>

#include "tsrunner/runner.h"

namespace tsrunner::cli {

// `tsrun bench`: latency and throughput of an export on random in-vocabulary inputs, modelled
// on trtexec / onnxruntime_perf_test / benchmark_app.
struct BenchOptions {
  std::string model_path;
  int64_t batch = 1;
  int64_t sequence = 0;          // required unless --generate
  int64_t decoder_sequence = 0;  // encoder-decoder exports; 0: as long as `sequence`
  int warmup = 5;
  int iterations = 0;     // 0: run for `duration_s` instead
  double duration_s = 0;  // 0 with iterations 0: the default of 50 iterations
  int threads = 0;
  int interop_threads = 0;
  bool optimize_graph = true;
  bool freeze = false;
  std::string compute = "fp32";  // RunnerOptions::compute
  RunnerOptions kernels;         // the kernel path and switches only (kernel_flags.h)
  bool json = false;
  bool debug = false;  // show LibTorch's deprecation warnings
  // --generate: a generation export's prefill and decode (bench_generate.cc).
  bool generate = false;
  int64_t prompt_tokens = 128;
  int64_t new_tokens = 128;
};

// Adds the `bench` subcommand to `app`, writing what it parses into `options`.
CLI::App* add_bench_command(CLI::App& app, BenchOptions& options);

// Runs the benchmark and prints the report (text or one JSON object). Returns the exit code;
// throws tsrunner errors for the caller to map to exit codes.
int run_bench(const BenchOptions& options);

// `tsrun bench --generate`: time to first token, time per output token, per-stream and
// aggregate tokens/s and peak RSS of `batch` sequences generated together (EOS ignored).
int run_generate_bench(const BenchOptions& options);

// The RunnerOptions a bench run loads the model with (both modes).
RunnerOptions bench_runner_options(const BenchOptions& options);

// Peak resident memory of this process, in MB (getrusage).
double peak_rss_mb();

}  // namespace tsrunner::cli
