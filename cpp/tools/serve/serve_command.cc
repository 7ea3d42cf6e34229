#include "serve_command.h"

#include <ATen/Parallel.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <thread>

#include "../allocator_tuning.h"
#include "../generate_mode.h"
#include "../kernel_flags.h"
#include "../range_check.h"
#include "http_server.h"
#include "metrics.h"
#include "service.h"
#include "tsrunner/errors.h"
#include "tsrunner/request_queue.h"
#include "tsrunner/version.h"

namespace tsrunner::serve {
namespace {

// A generation export decodes on its Generator's own thread, with `threads` intra-op threads;
// the first steps (the graph executor's profiling runs) happen here, before "listening".
std::unique_ptr<Generator> start_generator(const Runner& runner, int64_t max_sequences) {
  auto generator = std::make_unique<Generator>(runner, GeneratorOptions{max_sequences});
  GenerationParams warm;
  warm.max_new_tokens = 3;
  warm.ignore_eos = true;
  warm.do_sample = false;
  const int64_t pad = runner.manifest().pad_token_id.value_or(0);
  (void)generator->generate_ids({{pad, pad}, {pad}}, warm);
  return generator;
}

std::vector<ServedModel> load_models(const ServeOptions& options, int generation_threads) {
  std::vector<ServedModel> models;
  for (size_t i = 0; i < options.model_paths.size(); ++i) {
    ServedModel model;
    model.path = options.model_paths[i];
    model.name = i < options.names.size() ? options.names[i]
                                          : std::filesystem::path(model.path).stem().string();
    for (const ServedModel& other : models) {
      if (other.name == model.name) {
        throw InvalidInput("two models are named \"" + model.name + "\"; give --name for each");
      }
    }
    // Loading and the warm-up run on this (main) thread with one intra-op thread: an OpenMP
    // team left here would count against the cores and slow the workers' teams
    // (src/queue/request_queue.cc). The runners keep threads = 0 (each call takes its thread's
    // count): each worker sets its own, and a lone batch widens it.
    at::set_num_threads(1);
    RunnerOptions runner_options;
    runner_options.compute = options.compute;
    cli::copy_kernel_flags(options.kernels, runner_options);
    runner_options.warmup_runs = 1;  // the slow first calls happen before "listening"
    const bool generates = Manifest::read_from_archive(model.path).generates();
    // A generator's decoding thread is not a queue worker: its runner sets its own threads.
    if (generates) runner_options.threads = generation_threads;
    model.runner = std::make_unique<Runner>(model.path, runner_options);
    if (generates) model.generator = start_generator(*model.runner, options.max_sequences);
    const Manifest& manifest = model.runner->manifest();
    if (manifest.plain_module) {
      std::cerr << "tsrun serve: " << model.name << ": a plain TorchScript module (no tsrunner "
                << "manifest): /v2/models/" << model.name << "/infer takes its inputs by "
                << "forward's argument names, dtypes and shapes unchecked, no content digest; "
                << "`tsrunner adopt` makes a full archive\n";
    }
    if (model.generator) {
      std::cerr << "tsrun serve: " << model.name
                << ": generates (/v1/completions, /generate, /generate_stream)\n";
    } else if (manifest.has_tokenizer) {
      try {
        // One pipeline per model, over the runner's verified tokenizer: task options (TEI's
        // raw_scores) travel with each request.
        model.pipeline = std::make_unique<Pipeline>(*model.runner);
      } catch (const LoadError&) {
        throw;
      } catch (const Error& error) {  // a task without task-aware output: raw tensors only
        std::cerr << "tsrun serve: " << model.name << ": text routes off (" << error.what()
                  << "); /v2/models/" << model.name << "/infer serves it\n";
      }
    }
    models.push_back(std::move(model));
  }
  return models;
}

std::string info_json(const std::vector<ServedModel>& models, const ServeOptions& options,
                      size_t http_threads) {
  using nlohmann::ordered_json;
  const ServedModel& first = models.front();
  const Manifest& manifest = first.runner->manifest();
  ordered_json model_type;
  if (manifest.task_kind == Task::kFeatureExtraction) {
    model_type["embedding"] = {
        {"pooling",
         pooling_mode_name(manifest.pooling ? manifest.pooling->mode : PoolingMode::kMean)}};
  } else if (manifest.task_kind == Task::kTextClassification) {
    ordered_json id2label = ordered_json::object(), label2id = ordered_json::object();
    for (size_t i = 0; i < manifest.labels.size(); ++i) {
      id2label[std::to_string(i)] = manifest.labels[i];
      label2id[manifest.labels[i]] = i;
    }
    model_type[manifest.labels.size() == 1 ? "reranker" : "classifier"] = {{"id2label", id2label},
                                                                           {"label2id", label2id}};
  } else {
    model_type[manifest.task] = ordered_json::object();
  }
  ordered_json served = ordered_json::array();
  for (const ServedModel& model : models) {
    served.push_back(
        {{"name", model.name},
         {"task", model.runner->manifest().task},
         {"max_input_length", model.runner->manifest().max_length},
         {"text_routes", model.pipeline != nullptr},
         {"generates", model.generator != nullptr},
         {"kernel_path", model.runner->kernel_path()},
         {"engine", model.runner->kernel_path()},  // deprecated: kernel_path's first name
         {"compute", model.runner->options().compute}});
  }
  const ordered_json info = {{"model_id", first.name},
                             {"model_sha", nullptr},
                             {"model_dtype", "float32"},
                             {"model_type", model_type},
                             {"max_concurrent_requests", options.max_concurrent_requests},
                             {"max_input_length", manifest.max_length},
                             {"max_batch_tokens", options.max_batch_tokens},
                             {"max_batch_requests", options.max_batch_requests},
                             {"max_client_batch_size", options.max_client_batch_size},
                             {"auto_truncate", false},
                             {"tokenization_workers", http_threads},
                             {"version", version()},
                             {"models", served}};
  return info.dump();
}

std::string url_host(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

}  // namespace

CLI::App* add_serve_command(CLI::App& app, ServeOptions& options) {
  CLI::App* serve = app.add_subcommand(
      "serve",
      "serve exports over HTTP: text-embeddings-inference routes, OpenAI /v1/embeddings, Open "
      "Inference Protocol v2; generation exports: OpenAI /v1/completions, TGI /generate and "
      "/generate_stream (docs/serve.md)");
  serve
      ->add_option("models", options.model_paths,
                   "tsrunner exports (.pt); the first is the "
                   "default for the TEI and OpenAI routes")
      ->required();
  serve
      ->add_option("--name", options.names,
                   "a model's name, one per model in order (default: its file name without "
                   "extension)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  serve->add_option("--host", options.host, "address to listen on (default 127.0.0.1)");
  serve->add_option("--port", options.port, "port (default 8080; 0: any free port)")
      ->check(cli::integer_in(0, 65535));
  serve
      ->add_option("--threads", options.threads, "LibTorch intra-op threads per worker (default 1)")
      ->check(cli::integer_in(1, 1024));
  serve
      ->add_option("--compute", options.compute,
                   "fp32 (default) or bf16: Linear layers in bfloat16 on oneDNN (opt-in, less "
                   "exact; CPUs with AVX512_BF16 or AMX)")
      ->check(CLI::IsMember({"fp32", "bf16"}));
  cli::add_kernel_flags(*serve, options.kernels);
  serve
      ->add_option("--workers", options.workers,
                   "batches run at once, each on its own worker thread (default: cores / "
                   "--threads)")
      ->check(cli::integer_in(1, 1024));
  serve
      ->add_option("--lone-batch-threads", options.lone_batch_threads,
                   "intra-op threads for a batch that runs alone, the other workers waiting "
                   "(default: --workers x --threads, at most the cores)")
      ->check(cli::integer_in(1, 1024));
  serve
      ->add_option("--http-threads", options.http_threads,
                   "threads for connections, JSON and tokenizing (default cores / 2, 1 to 4)")
      ->check(cli::integer_in(1, 256));
  serve
      ->add_option("--max-batch-tokens", options.max_batch_tokens,
                   "padded tokens (rows x longest) per batch (default 16384)")
      ->check(cli::integer_in(1, 1 << 24));
  serve
      ->add_option("--max-batch-requests", options.max_batch_requests,
                   "inputs per batch (default 64)")
      ->check(cli::integer_in(1, 1 << 16));
  serve
      ->add_option("--max-wait-ms", options.max_wait_ms,
                   "how long a free worker waits to fill a batch (default 0: it runs what waits)")
      ->check(cli::milliseconds_in(0, 10000));
  serve
      ->add_option("--max-concurrent-requests", options.max_concurrent_requests,
                   "model requests at once; more are answered 429 (default 512)")
      ->check(cli::integer_in(1, 1 << 20));
  serve
      ->add_option("--max-client-batch-size", options.max_client_batch_size,
                   "inputs in one request of TEI's routes and /predict; more are answered 422 "
                   "(default 32; /v1/embeddings takes OpenAI's 2048)")
      ->check(cli::integer_in(1, 1 << 20));
  serve
      ->add_option("--max-sequences", options.max_sequences,
                   "sequences a generation export decodes together; more wait and join the "
                   "running batch as others finish (default 8)")
      ->check(cli::integer_in(1, 4096));
  serve
      ->add_option("--payload-limit", options.payload_limit,
                   "request body bytes; larger is answered 413 (default 2000000)")
      ->check(cli::integer_in(1, 1 << 30));
  serve
      ->add_option("--header-limit", options.header_limit,
                   "request line and header bytes; larger is answered 431 (default 16384)")
      ->check(cli::integer_in(1024, 1 << 20));
  serve
      ->add_option("--max-connections", options.max_connections,
                   "open connections; more are closed at once (default 4096)")
      ->check(cli::integer_in(1, 1 << 20));
  serve
      ->add_option("--read-timeout-ms", options.read_timeout_ms,
                   "time to receive a whole request, idle keep-alive included (default 30000)")
      ->check(cli::integer_in(1, 3600000));
  serve
      ->add_option("--write-timeout-ms", options.write_timeout_ms,
                   "time to send an answer (default 30000)")
      ->check(cli::integer_in(1, 3600000));
  serve
      ->add_option("--drain-timeout-ms", options.drain_timeout_ms,
                   "on SIGTERM/SIGINT, how long requests in flight may take to finish "
                   "(default 30000)")
      ->check(cli::integer_in(0, 3600000));
  serve->add_option("--api-key", options.api_key,
                    "require \"Authorization: Bearer KEY\" on every route but health (or set "
                    "TSRUN_API_KEY)");
  return serve;
}

int run_serve(ServeOptions options) {
  if (options.names.size() > options.model_paths.size()) {
    throw InvalidInput("more --name options than models");
  }
  if (options.api_key.empty()) {
    if (const char* key = std::getenv("TSRUN_API_KEY")) options.api_key = key;
  }
  // Signals are taken by sigwait below: block them before any thread starts (threads inherit
  // the mask), so no worker is interrupted and none runs a handler.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  cli::bound_memory_for_serving();  // before the first model loads
  const size_t cores = std::max(1u, std::thread::hardware_concurrency());
  // A generation export decodes one batch at a time on its own thread: by default with every
  // core (as a lone batch does), --lone-batch-threads otherwise.
  const int generation_threads =
      options.lone_batch_threads > 0 ? options.lone_batch_threads : static_cast<int>(cores);
  std::vector<ServedModel> models = load_models(options, generation_threads);
  // Half the cores (1 to 4): HTTP, JSON and tokenizing take ~0.3 ms of CPU per request, and
  // threads of their own beyond that compete with the workers for the cores (measured on 2
  // cores at 64 clients: one HTTP thread 228-234 req/s, two 216-227; docs/serve.md).
  const size_t http_threads =
      options.http_threads > 0 ? options.http_threads : std::clamp<size_t>(cores / 2, 1, 4);
  QueueOptions batching;
  batching.max_batch_tokens = options.max_batch_tokens;
  batching.max_batch_requests = options.max_batch_requests;
  batching.max_wait = std::chrono::microseconds(static_cast<int64_t>(options.max_wait_ms * 1000));
  batching.intra_op_threads = options.threads;
  batching.workers = options.workers > 0
                         ? options.workers
                         : std::max<size_t>(1, cores / static_cast<size_t>(options.threads));
  // Default: a lone request takes every core (measured in docs/serve.md, "Batching").
  batching.lone_batch_threads =
      options.lone_batch_threads > 0
          ? options.lone_batch_threads
          : std::max<int>(options.threads,
                          static_cast<int>(std::min(cores, batching.workers * options.threads)));
  std::vector<const Pipeline*> pipelines;
  for (const ServedModel& model : models) pipelines.push_back(model.pipeline.get());

  Metrics metrics;
  RequestQueue queue(pipelines, batching, &metrics);
  ServiceLimits limits{options.max_concurrent_requests, options.max_client_batch_size,
                       options.api_key};
  Service service(models, queue, metrics, limits, info_json(models, options, http_threads));
  HttpLimits http_limits;
  http_limits.body_bytes = options.payload_limit;
  http_limits.header_bytes = options.header_limit;
  http_limits.read_timeout = std::chrono::milliseconds(options.read_timeout_ms);
  http_limits.write_timeout = std::chrono::milliseconds(options.write_timeout_ms);
  http_limits.max_connections = options.max_connections;
  HttpServer server(options.host, static_cast<uint16_t>(options.port), http_limits,
                    [&service](HttpRequest&& request, Respond respond) {
                      service.handle(std::move(request), std::move(respond));
                    });
  server.start(http_threads);
  std::cerr << "listening on http://" << url_host(options.host) << ":" << server.port()
            << std::endl;

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  // Stop taking work, let what was taken finish (answers included), then stop.
  service.begin_shutdown();
  server.stop_accepting();
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(options.drain_timeout_ms);
  while (server.requests_in_flight() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const size_t unfinished = server.requests_in_flight();
  server.stop();
  queue.stop();
  // Destroying a generator fails what it still runs; then every request's waiting thread
  // answers (into the stopped server) and ends, before the service and metrics go.
  for (ServedModel& model : models) model.generator.reset();
  service.wait_for_generations();
  if (unfinished > 0) {
    std::cerr << "tsrun serve: stopped with " << unfinished
              << " request(s) unanswered after --drain-timeout-ms\n";
    return 1;
  }
  return 0;
}

}  // namespace tsrunner::serve
