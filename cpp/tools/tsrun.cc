// tsrun: run a tsrunner TorchScript export natively, with no Python in the process.
//
// Exit codes: 0 ok, 1 runtime failure, 2 usage error or bad input (including a model file that
// is missing or is not a tsrunner archive).
#include <ATen/ATen.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <charconv>
#include <iostream>
#include <string>
#include <vector>

#include "allocator_tuning.h"
#include "batch_mode.h"
#include "bench.h"
#include "raw_output.h"
#include "serve/serve_command.h"
#include "text_mode.h"
#include "tsrunner/tsrunner.h"

namespace {

constexpr int kExitRuntime = 1;
constexpr int kExitUsage = 2;

// Thrown for command-line mistakes that CLI11 cannot see (for example a malformed id list).
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// one_shot_note: --ids and --text run the model once per batch of at most --batch-size inputs,
// usually once. The graph executor's profiling first call and re-optimisation only pay off
// over many calls, so these modes run the graph as loaded (a one-shot run measured
// 0.49-0.53 s -> 0.41-0.45 s side by side, docs/benchmarks.md); --input keeps the executor on.

std::vector<int64_t> parse_id_list(const std::string& text) {
  std::vector<int64_t> ids;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, end - start);
    int64_t value = 0;
    const auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), value);
    if (item.empty() || ec != std::errc() || ptr != item.data() + item.size()) {
      throw UsageError("--ids: \"" + item + "\" is not an integer (expected e.g. 101,2040,102)");
    }
    ids.push_back(value);
    start = end + 1;
  }
  return ids;
}

int64_t pad_token_id(const tsrunner::Manifest& manifest) {
  const auto root = nlohmann::json::parse(manifest.raw_json, nullptr, false);
  if (root.is_object() && root.contains("pad_token_id") &&
      root["pad_token_id"].is_number_integer()) {
    return root["pad_token_id"].get<int64_t>();
  }
  return 0;
}

// One row per --ids; shorter rows are padded with the model's pad token and masked out.
tsrunner::TensorMap inputs_from_ids(const tsrunner::Manifest& manifest,
                                    const std::vector<std::string>& id_lists) {
  std::vector<std::vector<int64_t>> rows;
  size_t longest = 0;
  for (const std::string& text : id_lists) {
    rows.push_back(parse_id_list(text));
    longest = std::max(longest, rows.back().size());
  }
  const auto batch = static_cast<int64_t>(rows.size());
  const auto length = static_cast<int64_t>(longest);
  at::Tensor ids = at::full({batch, length}, pad_token_id(manifest), at::kLong);
  at::Tensor mask = at::zeros({batch, length}, at::kLong);
  for (int64_t b = 0; b < batch; ++b) {
    const auto n = static_cast<int64_t>(rows[b].size());
    ids[b].narrow(0, 0, n).copy_(at::tensor(rows[b], at::kLong));
    mask[b].narrow(0, 0, n).fill_(1);
  }
  tsrunner::TensorMap inputs{{"input_ids", ids}};
  if (manifest.find_input("attention_mask")) inputs.emplace("attention_mask", mask);
  return inputs;
}

int run_info(const std::string& model_path, bool as_json) {
  const tsrunner::Manifest manifest = tsrunner::Manifest::read_from_archive(model_path);
  if (as_json) {
    std::cout << nlohmann::ordered_json::parse(manifest.raw_json).dump(2) << "\n";
  } else {
    std::cout << model_path << "\n" << manifest.describe();
    std::cout << "machine     " << tsrunner::cpu_info().model
              << "; engine auto: " << tsrunner::auto_engine() << "\n";
  }
  return 0;
}

// One-shot runs (--ids, --text) keep the plain graph under engine auto: freezing and packing
// weights cost more at load than one call gains (docs/benchmarks.md, cold start).
std::string engine_for(const std::string& engine, bool one_shot) {
  return engine == "auto" && one_shot ? "default" : engine;
}

int run_raw(const std::string& model_path, const std::vector<std::string>& id_lists, int threads,
            const std::string& expected_sha256, const std::string& engine) {
  tsrunner::RunnerOptions options;
  options.threads = threads;
  options.engine = engine_for(engine, true);
  options.expected_sha256 = expected_sha256;
  options.optimize_graph = false;  // one call: see one_shot_note
  const tsrunner::Runner runner(model_path, options);
  const tsrunner::TensorMap outputs = runner.run(inputs_from_ids(runner.manifest(), id_lists));
  nlohmann::ordered_json result = nlohmann::ordered_json::object();
  for (const tsrunner::TensorSpec& spec : runner.manifest().outputs) {
    result[spec.name] = tsrunner::cli::tensor_to_json(outputs.at(spec.name));
  }
  std::cout << result.dump() << "\n";
  return 0;
}

// Text in, task-aware JSON out: --text (one result per text) or --input (JSON lines).
int run_predict(const std::string& model_path, const std::vector<std::string>& texts,
                const std::vector<std::string>& pairs, const tsrunner::cli::BatchOptions* batch,
                int threads, const std::string& expected_sha256, const std::string& engine,
                const tsrunner::TaskOptions& task_options) {
  tsrunner::RunnerOptions options;
  options.threads = threads;
  options.engine = engine_for(engine, batch == nullptr);
  options.expected_sha256 = expected_sha256;
  options.optimize_graph = batch != nullptr;  // --text is one call: see one_shot_note
  const tsrunner::Runner runner(model_path, options);
  const tsrunner::Pipeline pipeline(runner, tsrunner::Tokenizer::from_file(model_path),
                                    task_options);
  if (batch == nullptr) {
    tsrunner::cli::print_text_predictions(pipeline, texts, pairs, std::cout);
    return 0;
  }
  const size_t bad_lines = tsrunner::cli::run_batch(pipeline, *batch);
  if (bad_lines > 0) {
    std::cerr << "tsrun: error: " << bad_lines << " bad input line(s) answered with "
              << "{\"line\", \"error\"}; every other line has its result\n";
    return kExitUsage;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  tsrunner::cli::keep_freed_memory_for_reuse();
  CLI::App app{"tsrun: run a tsrunner TorchScript export (.pt) natively, no Python inside.\n"};
  app.set_version_flag("--version", std::string("tsrun ") + tsrunner::version() + " (LibTorch " +
                                        tsrunner::torch_version() + ")");
  app.footer(
      "Examples:\n"
      "  tsrun traced_bert.pt --ids 101,2040,2001,3958,27227,1029,102 --raw\n"
      "  tsrun traced_bert.pt --ids 101,7592,102 --ids 101,2088,2003,102 --raw   (padded batch)\n"
      "  tsrun traced_bert.pt --text \"Who was Jim Henson?\"\n"
      "  tsrun traced_bert.pt --input in.jsonl --output out.jsonl --batch-size 32\n"
      "  tsrun info traced_bert.pt\n"
      "  tsrun bench traced_bert.pt --batch 32 --seq 128 --json\n"
      "  tsrun serve traced_bert.pt --port 8080   (HTTP: TEI, OpenAI, Open Inference v2)\n"
      "Exit codes: 0 ok, 1 runtime failure, 2 usage error or bad input.");

  std::string model_path;
  std::vector<std::string> id_lists;
  bool raw = false;
  int threads = 0;
  app.add_option("model", model_path, "tsrunner export (.pt)");
  app.add_option("--ids", id_lists,
                 "comma-separated token ids, one sequence per --ids (repeat for a batch)")
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  std::vector<std::string> texts;
  std::vector<std::string> text_pairs;
  tsrunner::cli::BatchOptions batch;
  std::string input_path;
  app.add_option("--text", texts, "a text to run (repeat for several); prints one JSON per text")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_option("--text-pair", text_pairs, "the second text of a pair, one per --text")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_option("--input", input_path,
                 "JSON lines to run ({\"text\": ..., \"text_pair\": ...} or {\"input_ids\": "
                 "[...]}); - for stdin");
  tsrunner::TaskOptions task_options;
  size_t top_k = 0;
  app.add_option("--top-k", top_k,
                 "labels (text-classification, default all) or tokens per mask (fill-mask, "
                 "default 5) to keep")
      ->check(CLI::Range(1, 1 << 30));
  size_t doc_stride = 0;
  CLI::Option* doc_stride_option =
      app.add_option("--doc-stride", doc_stride,
                     "question-answering: tokens shared by the windows a long context is cut "
                     "into, windows of min(max length, 384) (default min(window / 2, 128))")
          ->check(CLI::Range(0, 1 << 20));
  app.add_option("--output", batch.output, "where --input's results go (default -: stdout)");
  app.add_option("--batch-size", batch.batch_size, "inputs per batch in --input mode")
      ->check(CLI::Range(1, 65536));
  CLI::Option* window_option =
      app.add_option("--window", batch.window,
                     "--input lines sorted by length together (default 4096): larger pads less, "
                     "smaller answers sooner and holds less memory")
          ->check(CLI::Range(1, 1 << 24));
  CLI::Option* concurrent_option =
      app.add_option("--concurrent-batches", batch.concurrent_batches,
                     "--input batches run at once, each with --threads threads (default 1); on "
                     "short inputs --threads 1 --concurrent-batches <cores> is fastest")
          ->check(CLI::Range(1, 1024));
  app.add_flag("--raw", raw, "print every output tensor as JSON {shape, dtype, data}");
  app.add_option("--threads", threads, "intra-op threads (0: LibTorch default)")
      ->check(CLI::NonNegativeNumber);
  std::string engine = "auto";
  app.add_option("--engine", engine,
                 "kernels: auto (oneDNN on x86-64 CPUs, except for one-shot --ids/--text), "
                 "onednn or default")
      ->check(CLI::IsMember({"auto", "onednn", "default"}));
  std::string expected_sha256;
  app.add_option("--expect-sha256", expected_sha256,
                 "refuse the model unless its content digest is this (docs/security.md)");

  CLI::App* info = app.add_subcommand("info", "print the manifest of an export");
  std::string info_path;
  bool info_json = false;
  info->add_option("model", info_path, "tsrunner export (.pt)")->required();
  info->add_flag("--json", info_json, "print the manifest as JSON");

  tsrunner::cli::BenchOptions bench_options;
  CLI::App* bench = tsrunner::cli::add_bench_command(app, bench_options);
  tsrunner::serve::ServeOptions serve_options;
  CLI::App* serve = tsrunner::serve::add_serve_command(app, serve_options);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    const int code = app.exit(error);
    return code == 0 ? 0 : kExitUsage;
  }

  try {
    if (info->parsed()) return run_info(info_path, info_json);
    if (bench->parsed()) return tsrunner::cli::run_bench(bench_options);
    if (serve->parsed()) return tsrunner::serve::run_serve(serve_options);
    if (model_path.empty()) throw UsageError("no model given; see tsrun --help");
    if (texts.empty() && !text_pairs.empty()) throw UsageError("--text-pair needs --text");
    if (!input_path.empty() || !texts.empty()) {
      if (!id_lists.empty() || raw)
        throw UsageError("--ids/--raw cannot be mixed with --text or --input");
      if (!input_path.empty() && !texts.empty())
        throw UsageError("use --text or --input, not both");
      if (input_path.empty() && (window_option->count() > 0 || concurrent_option->count() > 0))
        throw UsageError("--window and --concurrent-batches need --input");
      batch.input = input_path;
      if (top_k > 0) task_options.top_k = top_k;
      if (doc_stride_option->count() > 0) task_options.doc_stride = doc_stride;
      return run_predict(model_path, texts, text_pairs, input_path.empty() ? nullptr : &batch,
                         threads, expected_sha256, engine, task_options);
    }
    if (id_lists.empty()) {
      throw UsageError("nothing to run: pass --ids, --text or --input (see tsrun --help)");
    }
    if (!raw) throw UsageError("--ids needs --raw (for task-aware output pass --text)");
    for (const CLI::Option* option : {window_option, concurrent_option, doc_stride_option}) {
      if (option->count() > 0) throw UsageError(option->get_name() + " needs --text or --input");
    }
    return run_raw(model_path, id_lists, threads, expected_sha256, engine);
  } catch (const UsageError& error) {
    std::cerr << "tsrun: error: " << error.what() << "\n";
    return kExitUsage;
  } catch (const tsrunner::LoadError& error) {
    std::cerr << "tsrun: error: " << error.what() << "\n";
    return kExitUsage;
  } catch (const tsrunner::InvalidInput& error) {
    std::cerr << "tsrun: error: invalid input: " << error.what() << "\n";
    return kExitUsage;
  } catch (const std::exception& error) {
    std::cerr << "tsrun: error: " << error.what() << "\n";
    return kExitRuntime;
  } catch (...) {
    std::cerr << "tsrun: error: unknown failure\n";
    return kExitRuntime;
  }
}
