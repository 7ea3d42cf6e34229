// `tsrun bench MODEL --generate`: the generation loop's speed on random prompts (docs/cli.md).
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <vector>

#include "bench.h"
#include "kernel_flags.h"
#include "tsrunner/tsrunner.h"

namespace tsrunner::cli {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// One timed generation of every prompt together: when each sequence got its first and last
// token, from the start.
struct Round {
  double total_s = 0;
  std::vector<double> first_s, last_s;
};

Round run_round(const Generator& generator, const std::vector<std::vector<int64_t>>& prompts,
                const GenerationParams& params) {
  Round round;
  round.first_s.assign(prompts.size(), -1);
  round.last_s.assign(prompts.size(), 0);
  const auto start = Clock::now();
  (void)generator.generate_ids(prompts, params, [&](const GenerationChunk& chunk) {
    const double now = seconds_since(start);
    if (round.first_s[chunk.index] < 0) round.first_s[chunk.index] = now;
    round.last_s[chunk.index] = now;
    return true;
  });
  round.total_s = seconds_since(start);
  return round;
}

}  // namespace

int run_generate_bench(const BenchOptions& options) {
  const RunnerOptions runner_options = bench_runner_options(options);
  const auto load_start = Clock::now();
  const Runner runner(options.model_path, runner_options);
  const double load_ms = seconds_since(load_start) * 1e3;
  const Generator generator(runner, GeneratorOptions{options.batch});  // all in one batch

  const int64_t vocab = runner.manifest().vocab_size.value_or(0);
  if (vocab < 2) throw InvalidInput("this export records no vocabulary size to draw prompts from");
  std::mt19937_64 random(0);
  std::uniform_int_distribution<int64_t> token(1, vocab - 1);
  std::vector<std::vector<int64_t>> prompts(static_cast<size_t>(options.batch));
  for (auto& prompt : prompts) {
    prompt.resize(static_cast<size_t>(options.prompt_tokens));
    for (int64_t& id : prompt) id = token(random);
  }
  GenerationParams params;
  params.max_new_tokens = options.new_tokens;
  params.ignore_eos = true;  // every round makes the same number of tokens
  params.do_sample = false;
  generator.check(prompts.front(), params);  // a prompt the context cannot hold: one line

  // One untimed round of the full length: the graph executor profiles and re-optimises decode
  // as the past grows, so a shorter warm-up would leave that work in the timed rounds.
  (void)run_round(generator, prompts, params);

  const int rounds = options.iterations > 0 ? options.iterations : 3;
  std::vector<double> ttft_ms, tpot_ms, totals;
  for (int r = 0; r < rounds; ++r) {
    const Round round = run_round(generator, prompts, params);
    totals.push_back(round.total_s);
    for (size_t i = 0; i < prompts.size(); ++i) {
      ttft_ms.push_back(round.first_s[i] * 1e3);
      if (options.new_tokens > 1) {
        tpot_ms.push_back((round.last_s[i] - round.first_s[i]) * 1e3 /
                          static_cast<double>(options.new_tokens - 1));
      }
    }
  }
  const double ttft = median(ttft_ms);
  const double tpot = tpot_ms.empty() ? 0.0 : median(tpot_ms);
  const double total = median(totals);
  const auto batch = static_cast<double>(options.batch);
  const double per_stream = tpot > 0 ? 1e3 / tpot : 0.0;  // decode tokens/s of one sequence
  const double aggregate = batch * static_cast<double>(options.new_tokens) / total;
  const double decode_aggregate = per_stream * batch;
  const int threads_used = options.threads > 0 ? options.threads : at::get_num_threads();

  if (options.json) {
    nlohmann::ordered_json report;
    report["model"] = options.model_path;
    report["mode"] = "generate";
    report["batch"] = options.batch;
    report["prompt_tokens"] = options.prompt_tokens;
    report["new_tokens"] = options.new_tokens;
    report["threads"] = threads_used;
    report["kernel_path"] = runner.kernel_path();
    report["cpu"] = cpu_info().model;
    report["rounds"] = rounds;
    report["load_ms"] = load_ms;
    report["time_to_first_token_ms"] = ttft;
    report["time_per_output_token_ms"] = tpot;
    report["per_stream_tokens_per_s"] = per_stream;
    report["decode_tokens_per_s"] = decode_aggregate;
    report["aggregate_tokens_per_s"] = aggregate;
    report["total_s"] = total;
    report["peak_rss_mb"] = peak_rss_mb();
    std::cout << report.dump() << "\n";
    return 0;
  }
  std::printf("model          %s\n", options.model_path.c_str());
  std::printf(
      "shape          batch %lld x prompt %lld + %lld new tokens (EOS ignored), %d "
      "threads\n",
      static_cast<long long>(options.batch), static_cast<long long>(options.prompt_tokens),
      static_cast<long long>(options.new_tokens), threads_used);
  std::printf("cpu            %s\n", cpu_info().model.c_str());
  std::printf("kernel path    %s (%s)\n", runner.kernel_path().c_str(),
              runner.kernel_path_reason().c_str());
  std::printf("load           %.1f ms\n", load_ms);
  std::printf("rounds         %d (medians)\n", rounds);
  std::printf("first token    %.2f ms (prefill of the batch + first token)\n", ttft);
  std::printf("per token      %.2f ms (time per output token, after the first)\n", tpot);
  std::printf("tokens/s       %.1f per stream, %.1f decode aggregate, %.1f overall\n", per_stream,
              decode_aggregate, aggregate);
  std::printf("peak RSS       %.1f MB\n", peak_rss_mb());
  return 0;
}

}  // namespace tsrunner::cli
