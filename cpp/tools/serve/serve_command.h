#pragma once

#include <CLI/CLI.hpp>

#include <cstddef>
#include <string>
#include <vector>

#include "tsrunner/runner.h"

namespace tsrunner::serve {

// `tsrun serve MODEL.pt [MORE.pt ...]` (docs/serve.md).
struct ServeOptions {
  std::vector<std::string> model_paths;
  std::vector<std::string> names;  // one per model; default: the file name without extension
  std::string host = "127.0.0.1";
  int port = 8080;
  int threads = 1;  // LibTorch intra-op threads per worker
  // RunnerOptions::compute: "fp32" or the opt-in "bf16" (the Runner refuses it where it cannot).
  std::string compute = "fp32";
  // The kernel path and switches only (tools/kernel_flags.h). oneDNN's memory is bounded under
  // load by bound_memory_for_serving (its per-shape caches capped).
  RunnerOptions kernels;
  size_t workers = 0;          // batches in flight; 0: the cores / threads
  int lone_batch_threads = 0;  // QueueOptions::lone_batch_threads; 0: workers x threads
  size_t http_threads = 0;     // 0: cores / 2, 1 to 4
  size_t max_batch_tokens = 16384;
  size_t max_batch_requests = 64;
  double max_wait_ms = 0;
  size_t max_concurrent_requests = 512;
  int64_t max_sequences = 8;  // GeneratorOptions::max_batch of each generation export
  size_t max_client_batch_size = 32;
  size_t payload_limit = 2000000;
  size_t header_limit = 16384;
  size_t max_connections = 4096;
  int read_timeout_ms = 30000;
  int write_timeout_ms = 30000;
  int drain_timeout_ms = 30000;
  std::string api_key;  // also from $TSRUN_API_KEY (keeps it out of `ps`)
};

CLI::App* add_serve_command(CLI::App& app, ServeOptions& options);

// Loads the models, serves until SIGTERM or SIGINT, finishes the requests in flight, returns
// the exit code (0). Throws tsrunner errors (load failures) and std::runtime_error (cannot
// listen) for the caller to report.
int run_serve(ServeOptions options);

}  // namespace tsrunner::serve
