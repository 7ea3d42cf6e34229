#include "bench.h"

#include <sys/resource.h>
#include "kernel_flags.h"

#include <nlohmann/json.hpp>

#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <numeric>
#include <vector>

#include "range_check.h"
#include "tsrunner/tsrunner.h"

namespace tsrunner::cli {

namespace {

constexpr int kDefaultIterations = 50;

using Clock = std::chrono::steady_clock;

double elapsed_ms(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// Nearest-rank percentile of sorted samples.
double percentile(const std::vector<double>& sorted, double fraction) {
  const auto rank = static_cast<size_t>(std::ceil(fraction * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

struct LatencySummary {
  double min, mean, p50, p90, p99, max;
};

LatencySummary summarise(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  const double total = std::accumulate(samples.begin(), samples.end(), 0.0);
  return {samples.front(),           total / static_cast<double>(samples.size()),
          percentile(samples, 0.50), percentile(samples, 0.90),
          percentile(samples, 0.99), samples.back()};
}

}  // namespace

double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports KiB
}

CLI::App* add_bench_command(CLI::App& app, BenchOptions& options) {
  CLI::App* bench = app.add_subcommand(
      "bench", "measure latency and throughput on random in-vocabulary inputs of one shape");
  bench->add_option("model", options.model_path, "tsrunner export (.pt)")->required();
  bench->add_option("--batch", options.batch, "sequences per call")
      ->required()
      ->check(integer_in(1, 1 << 20));
  auto* sequence = bench->add_option("--seq", options.sequence, "tokens per sequence")
                       ->check(integer_in(1, 1 << 20));
  auto* generate =
      bench->add_flag("--generate", options.generate,
                      "generation export: time to first token, time per output token and "
                      "tokens/s of --batch sequences generated together (EOS ignored)");
  sequence->excludes(generate);
  bench
      ->add_option("--prompt-tokens", options.prompt_tokens,
                   "with --generate: prompt tokens per sequence (default 128)")
      ->check(integer_in(1, 1 << 20))
      ->needs(generate);
  bench
      ->add_option("--new-tokens", options.new_tokens,
                   "with --generate: tokens generated per sequence (default 128)")
      ->check(integer_in(1, 1 << 20))
      ->needs(generate);
  bench
      ->add_option("--decoder-seq", options.decoder_sequence,
                   "decoder tokens per sequence for encoder-decoder exports (T5, BART; default: "
                   "--seq)")
      ->check(integer_in(1, 1 << 20));
  bench->add_option("--warmup", options.warmup, "untimed calls after the first (default 5)")
      ->check(integer_in(0, 1 << 30));
  auto* iterations =
      bench->add_option("--iterations", options.iterations, "timed calls (default 50)")
          ->check(integer_in(1, 1 << 30));
  bench->add_option("--duration", options.duration_s, "time calls for this many seconds instead")
      ->check(positive_seconds())
      ->excludes(iterations);
  bench->add_option("--threads", options.threads, "intra-op threads (0: LibTorch default)")
      ->check(integer_in(0, tsrunner::kMaxThreads));
  bench
      ->add_option("--interop-threads", options.interop_threads,
                   "inter-op threads (0: LibTorch default)")
      ->check(integer_in(0, tsrunner::kMaxThreads));
  bench->add_flag("!--no-optimize-graph", options.optimize_graph,
                  "turn off the graph executor's profiling and optimisation");
  bench->add_flag("--freeze", options.freeze, "freeze and optimize_for_inference at load");
  bench
      ->add_option("--compute", options.compute,
                   "fp32 (default) or bf16: Linear layers in bfloat16 on oneDNN (opt-in, less "
                   "exact; CPUs with AVX512_BF16 or AMX)")
      ->check(CLI::IsMember({"fp32", "bf16"}));
  add_kernel_flags(*bench, options.kernels);
  bench->add_flag("--json", options.json, "print one JSON object");
  bench->add_flag("--debug", options.debug,
                  "also show LibTorch's deprecation warnings (hidden by default)");
  return bench;
}

RunnerOptions bench_runner_options(const BenchOptions& options) {
  RunnerOptions runner_options;
  runner_options.threads = options.threads;
  runner_options.interop_threads = options.interop_threads;
  runner_options.optimize_graph = options.optimize_graph;
  runner_options.freeze = options.freeze;
  runner_options.compute = options.compute;
  copy_kernel_flags(options.kernels, runner_options);
  return runner_options;
}

int run_bench(const BenchOptions& options) {
  if (options.generate) return run_generate_bench(options);
  if (options.sequence < 1) throw InvalidInput("--seq is required (or --generate)");
  const RunnerOptions runner_options = bench_runner_options(options);

  const auto load_start = Clock::now();
  const Runner runner(options.model_path, runner_options);
  const double load_ms = elapsed_ms(load_start);
  ExampleShape shape;
  shape.batch = options.batch;
  shape.sequence = options.sequence;
  shape.decoder_sequence = options.decoder_sequence;
  const TensorMap inputs = make_example_inputs(runner.manifest(), shape);

  // The first call pays for the graph executor's profiling and optimisation: report it apart.
  const auto first_start = Clock::now();
  (void)runner.run(inputs);
  const double first_call_ms = elapsed_ms(first_start);
  for (int i = 0; i < options.warmup; ++i) (void)runner.run(inputs);

  std::vector<double> latencies;
  const int iterations = options.iterations > 0 ? options.iterations
                                                : (options.duration_s > 0 ? 0 : kDefaultIterations);
  const auto timed_start = Clock::now();
  while (iterations > 0 ? latencies.size() < static_cast<size_t>(iterations)
                        : latencies.empty() || elapsed_ms(timed_start) < options.duration_s * 1e3) {
    const auto start = Clock::now();
    (void)runner.run(inputs);
    latencies.push_back(elapsed_ms(start));
  }
  const double total_s = elapsed_ms(timed_start) / 1e3;

  const LatencySummary latency = summarise(latencies);
  const double calls = static_cast<double>(latencies.size());
  const double sequences_per_s = calls * static_cast<double>(options.batch) / total_s;
  const double tokens_per_s = sequences_per_s * static_cast<double>(options.sequence);
  // The runner's own count, or (threads 0) this thread's, which its calls kept.
  const int threads_used = options.threads > 0 ? options.threads : at::get_num_threads();

  if (options.json) {
    nlohmann::ordered_json report;
    report["model"] = options.model_path;
    report["batch"] = options.batch;
    report["sequence"] = options.sequence;
    if (runner.manifest().find_input("decoder_input_ids")) {
      report["decoder_sequence"] = inputs.at("decoder_input_ids").size(1);
    }
    report["threads"] = threads_used;
    report["interop_threads"] = at::get_num_interop_threads();
    report["optimize_graph"] = options.optimize_graph;
    report["freeze"] = options.freeze;
    report["kernel_path_option"] = options.kernels.kernel_path;
    report["compute"] = options.compute;
    report["kernel_path"] = runner.kernel_path();
    report["kernel_path_reason"] = runner.kernel_path_reason();
    // Deprecated: the first names of the three keys above (docs/cli.md).
    report["engine_option"] = options.kernels.kernel_path;
    report["engine"] = runner.kernel_path();
    report["engine_reason"] = runner.kernel_path_reason();
    report["cpu"] = cpu_info().model;
    report["warmup"] = options.warmup;
    report["iterations"] = latencies.size();
    report["load_ms"] = load_ms;
    report["first_call_ms"] = first_call_ms;
    report["latency_ms"] = {{"min", latency.min}, {"mean", latency.mean}, {"p50", latency.p50},
                            {"p90", latency.p90}, {"p99", latency.p99},   {"max", latency.max}};
    report["throughput"] = {{"sequences_per_s", sequences_per_s}, {"tokens_per_s", tokens_per_s}};
    report["peak_rss_mb"] = peak_rss_mb();
    std::cout << report.dump() << "\n";
    return 0;
  }
  std::printf("model        %s\n", options.model_path.c_str());
  std::printf("shape        batch %lld x sequence %lld, %d threads\n",
              static_cast<long long>(options.batch), static_cast<long long>(options.sequence),
              threads_used);
  std::printf("cpu          %s\n", cpu_info().model.c_str());
  std::printf("kernel path  %s (%s)\n", runner.kernel_path().c_str(),
              runner.kernel_path_reason().c_str());
  std::printf("load         %.1f ms\n", load_ms);
  std::printf("first call   %.2f ms\n", first_call_ms);
  std::printf("iterations   %zu (after %d warm-up)\n", latencies.size(), options.warmup);
  std::printf("latency ms   min %.2f  mean %.2f  p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n",
              latency.min, latency.mean, latency.p50, latency.p90, latency.p99, latency.max);
  std::printf("throughput   %.2f sequences/s, %.0f tokens/s\n", sequences_per_s, tokens_per_s);
  std::printf("peak RSS     %.1f MB\n", peak_rss_mb());
  return 0;
}

}  // namespace tsrunner::cli
