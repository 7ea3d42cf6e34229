// tsrun: run a tsrunner TorchScript export natively, with no Python in the process.
//
// Exit codes: 0 ok, 1 runtime failure, 2 usage error or bad input (including a model file that
// is missing or is not a tsrunner archive).
#include <ATen/ATen.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <charconv>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "allocator_tuning.h"
#include "atomic_output.h"
#include "batch_mode.h"
#include "bench.h"
#include "generate_mode.h"
#include "kernel_flags.h"
#include "range_check.h"
#include "raw_output.h"
#include "serve/serve_command.h"
#include "text_mode.h"
#include "token_mode.h"
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

std::vector<int64_t> parse_id_list(const std::string& text, const char* option = "--ids") {
  std::vector<int64_t> ids;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, end - start);
    int64_t value = 0;
    const auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), value);
    if (item.empty() || ec != std::errc() || ptr != item.data() + item.size()) {
      throw UsageError(std::string(option) + ": \"" + item +
                       "\" is not an integer (expected e.g. 101,2040,102)");
    }
    ids.push_back(value);
    start = end + 1;
  }
  return ids;
}

// Rows of ids as one [rows, longest] batch: shorter rows are padded with `pad` and masked out.
std::pair<at::Tensor, at::Tensor> padded_rows(const std::vector<std::vector<int64_t>>& rows,
                                              int64_t pad) {
  size_t longest = 0;
  for (const std::vector<int64_t>& row : rows) longest = std::max(longest, row.size());
  const auto batch = static_cast<int64_t>(rows.size());
  const auto length = static_cast<int64_t>(longest);
  at::Tensor ids = at::full({batch, length}, pad, at::kLong);
  at::Tensor mask = at::zeros({batch, length}, at::kLong);
  for (int64_t b = 0; b < batch; ++b) {
    const auto n = static_cast<int64_t>(rows[b].size());
    ids[b].narrow(0, 0, n).copy_(at::tensor(rows[b], at::kLong));
    mask[b].narrow(0, 0, n).fill_(1);
  }
  return {ids, mask};
}

// One row per --ids, and for encoder-decoder exports (T5, BART) one decoder row per
// --decoder-ids (or one for every row; default: the decoder start token alone).
tsrunner::TensorMap inputs_from_ids(const tsrunner::Manifest& manifest,
                                    const std::vector<std::string>& id_lists,
                                    const std::vector<std::string>& decoder_id_lists) {
  std::vector<std::vector<int64_t>> rows;
  for (const std::string& text : id_lists) rows.push_back(parse_id_list(text));
  const int64_t pad = manifest.pad_token_id.value_or(0);
  auto [ids, mask] = padded_rows(rows, pad);
  // Inputs by the role the manifest records, whatever the export named them.
  const tsrunner::TensorSpec* token_ids = manifest.find_input_by_role(tsrunner::Role::kTokenIds);
  if (token_ids == nullptr) throw UsageError("--ids: this export takes no token ids");
  tsrunner::TensorMap inputs{{token_ids->name, ids}};
  if (const tsrunner::TensorSpec* spec =
          manifest.find_input_by_role(tsrunner::Role::kAttentionMask)) {
    inputs.emplace(spec->name, mask);
  }
  // A plain module's token_type_ids has no default to fill: one segment, as the runner's default.
  const tsrunner::TensorSpec* type_ids = manifest.find_input_by_role(tsrunner::Role::kTokenTypeIds);
  if (manifest.plain_module && type_ids != nullptr) {
    inputs.emplace(type_ids->name, at::zeros_like(ids));
  }
  const tsrunner::TensorSpec* decoder_ids_input =
      manifest.find_input_by_role(tsrunner::Role::kDecoderTokenIds);
  if (decoder_ids_input == nullptr) {
    if (!decoder_id_lists.empty()) {
      throw UsageError("--decoder-ids: this export has no decoder_input_ids input");
    }
    return inputs;
  }
  if (decoder_id_lists.size() > 1 && decoder_id_lists.size() != id_lists.size()) {
    throw UsageError("give one --decoder-ids for every --ids, or one for all (got " +
                     std::to_string(decoder_id_lists.size()) + " for " +
                     std::to_string(id_lists.size()) + ")");
  }
  std::vector<std::vector<int64_t>> decoder_rows;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (decoder_id_lists.empty()) {
      decoder_rows.push_back({manifest.decoder_start_token_id.value_or(0)});
    } else {
      decoder_rows.push_back(
          parse_id_list(decoder_id_lists[decoder_id_lists.size() == 1 ? 0 : i], "--decoder-ids"));
    }
  }
  auto [decoder_ids, decoder_mask] = padded_rows(decoder_rows, pad);
  inputs.emplace(decoder_ids_input->name, decoder_ids);
  if (manifest.find_input("decoder_attention_mask")) {
    inputs.emplace("decoder_attention_mask", decoder_mask);
  }
  return inputs;
}

// What a plain TorchScript module (no tsrunner manifest) lacks, said once on stderr.
void note_plain_module(const std::string& path, const tsrunner::Manifest& manifest) {
  if (!manifest.plain_module) return;
  std::cerr << "tsrun: note: " << path
            << " is a plain TorchScript module (no tsrunner manifest): inputs by forward's "
               "argument names, dtypes and shapes unchecked, no content digest; `tsrunner adopt "
            << path << " --model MODEL_DIR -o model.pt` makes a full archive\n";
}

// The manifest's summary, then the content digest (what --expect-sha256 and
// RunnerOptions::expected_sha256 take, docs/security.md).
int run_info(const std::string& model_path, bool as_json) {
  const tsrunner::Manifest manifest = tsrunner::Manifest::read_from_archive(model_path);
  note_plain_module(model_path, manifest);
  if (as_json) {
    std::cout << nlohmann::ordered_json::parse(manifest.raw_json).dump(2) << "\n";
  } else {
    std::cout << model_path << "\n"
              << manifest.describe() << "  sha256      " << tsrunner::verify_archive(model_path)
              << "\n";
    std::cout << "machine     " << tsrunner::cpu_info().model
              << "; kernel path auto: " << tsrunner::auto_kernel_path() << "\n";
  }
  return 0;
}

// One-shot runs (--ids, --text) keep the plain graph under kernel path auto: freezing and
// packing weights cost more at load than one call gains (docs/benchmarks.md, cold start).
// Asking for bf16 compute asks for the oneDNN kernel path.
std::string kernel_path_for(const tsrunner::RunnerOptions& options, bool one_shot) {
  return options.kernel_path == "auto" && one_shot && options.compute == "fp32"
             ? "default"
             : options.kernel_path;
}

int run_raw(const std::string& model_path, const std::vector<std::string>& id_lists,
            const std::vector<std::string>& decoder_id_lists,
            const tsrunner::RunnerOptions& options) {
  const tsrunner::Runner runner(model_path, options);
  note_plain_module(model_path, runner.manifest());
  const tsrunner::TensorMap outputs =
      runner.run(inputs_from_ids(runner.manifest(), id_lists, decoder_id_lists));
  nlohmann::ordered_json result = nlohmann::ordered_json::object();
  for (const tsrunner::TensorSpec& spec : runner.manifest().outputs) {
    result[spec.name] = tsrunner::cli::tensor_to_json(outputs.at(spec.name));
  }
  std::cout << result.dump() << "\n";
  return 0;
}

// Text in, task-aware JSON out: --text (one result per text) or --input (JSON lines).
int run_predict(const tsrunner::Runner& runner, const std::vector<std::string>& texts,
                const std::vector<std::string>& pairs, tsrunner::cli::BatchOptions* batch,
                const std::string& output_path, const tsrunner::TaskOptions& task_options) {
  // An export without a usable tokenizer still takes --input lines of token ids; text is
  // refused per line (or for --text) with the reason.
  const tsrunner::Pipeline pipeline(runner, task_options);
  if (batch == nullptr) {
    tsrunner::cli::AtomicOutput output(output_path);
    tsrunner::cli::print_text_predictions(pipeline, texts, pairs, output.stream());
    output.commit();
    return 0;
  }
  batch->task = task_options;
  const size_t bad_lines = tsrunner::cli::run_batch(pipeline, *batch);
  if (bad_lines > 0) {
    std::cerr << "tsrun: error: " << bad_lines << " bad input line(s) answered with "
              << "{\"line\", \"error\"}; every other line has its result\n";
    return kExitUsage;
  }
  return 0;
}

// LibTorch warns on stderr that some of its own functions are deprecated (every int8 export
// prints quantize_per_tensor's notice): news for LibTorch's users, not for tsrun's. Hidden unless
// --debug; every other warning still shows.
class HideDeprecationWarnings : public c10::WarningHandler {
 public:
  void process(const c10::Warning& warning) override {
    if (std::holds_alternative<c10::DeprecationWarning>(warning.type()) ||
        warning.msg().find("deprecated") != std::string::npos) {
      return;
    }
    c10::WarningHandler::process(warning);
  }
};

// CLI11 reads a value like "[1,2,3]" as a list of values: texts must arrive as typed.
CLI::Option* add_text_option(CLI::App& app, const std::string& name,
                             std::vector<std::string>& values, const std::string& help) {
  return app.add_option(name, values, help)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
}

}  // namespace

int main(int argc, char** argv) {
  tsrunner::cli::keep_freed_memory_for_reuse();
  CLI::App app{"tsrun: run a tsrunner TorchScript export (.pt) natively, no Python inside.\n"};
  // Every usage error is one line, like tsrun's other errors.
  app.failure_message([](const CLI::App*, const CLI::Error& error) {
    return "tsrun: error: " + std::string(error.what()) + "\n";
  });
  app.set_version_flag("--version", std::string("tsrun ") + tsrunner::version() + " (LibTorch " +
                                        tsrunner::torch_version() + ")");
  app.footer(
      "Examples:\n"
      "  tsrun traced_bert.pt --ids 101,2040,2001,3958,27227,1029,102 --raw\n"
      "  tsrun traced_bert.pt --ids 101,7592,102 --ids 101,2088,2003,102 --raw   (padded batch)\n"
      "  tsrun t5.pt --ids 13,8,1 --decoder-ids 0,17 --raw   (encoder-decoder: T5, BART)\n"
      "  tsrun traced_bert.pt --text \"Who was Jim Henson?\"\n"
      "  tsrun traced_bert.pt --text \"Who was Jim Henson?\" --tokens   (the ids, for --ids)\n"
      "  tsrun traced_bert.pt --input in.jsonl --output out.jsonl --batch-size 32\n"
      "  tsrun gpt2.pt --text \"Once upon a time\" --max-new-tokens 32 --temperature 0.8 --seed 1\n"
      "  tsrun info traced_bert.pt\n"
      "  tsrun bench traced_bert.pt --batch 32 --seq 128 --json\n"
      "  tsrun serve traced_bert.pt --port 8080   (HTTP: TEI, OpenAI, Open Inference v2)\n"
      "Exit codes: 0 ok, 1 runtime failure, 2 usage error or bad input.");

  std::string model_path;
  std::vector<std::string> id_lists;
  std::vector<std::string> decoder_id_lists;
  bool raw = false;
  bool debug = false;
  int threads = 0;
  app.add_option("model", model_path, "tsrunner export (.pt)");
  app.add_option("--ids", id_lists,
                 "comma-separated token ids, one sequence per --ids (repeat for a batch)")
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_option("--decoder-ids", decoder_id_lists,
                 "encoder-decoder exports (T5, BART): the decoder's token ids, one per --ids or "
                 "one for all (default: the decoder start token)")
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  std::vector<std::string> texts;
  std::vector<std::string> text_pairs;
  tsrunner::cli::BatchOptions batch;
  std::string input_path;
  add_text_option(app, "--text", texts,
                  "a text to run (repeat for several); prints one JSON per text");
  add_text_option(app, "--text-pair", text_pairs, "the second text of a pair, one per --text");
  app.add_option("--input", input_path,
                 "JSON lines to run ({\"text\": ..., \"text_pair\": ...} or {\"input_ids\": "
                 "[...]}); - for stdin");
  tsrunner::TaskOptions task_options;
  size_t top_k = 0;
  app.add_option("--top-k", top_k,
                 "labels (text-classification, default all) or tokens per mask (fill-mask, "
                 "default 5) to keep")
      ->check(tsrunner::cli::integer_in(1, 1 << 30));
  size_t doc_stride = 0;
  CLI::Option* doc_stride_option =
      app.add_option("--doc-stride", doc_stride,
                     "question-answering: tokens shared by the windows a long context is cut "
                     "into, windows of min(max length, 384) (default min(window / 2, 128))")
          ->check(tsrunner::cli::integer_in(0, 1 << 20));
  std::string output_path = "-";
  app.add_option("--output", output_path,
                 "where the results go, written whole or not at all (default -: stdout)");
  std::string prompt_name;
  CLI::Option* prompt_name_option = app.add_option(
      "--prompt-name", prompt_name,
      "sentence-transformers models: the saved prompt put before every text (default: the "
      "model's default prompt, if any; `tsrun info` lists them)");
  app.add_option("--batch-size", batch.batch_size, "inputs per batch in --input mode")
      ->check(tsrunner::cli::integer_in(1, 65536));
  CLI::Option* window_option =
      app.add_option("--window", batch.window,
                     "--input lines sorted by length together (default 4096): larger pads less, "
                     "smaller answers sooner and holds less memory")
          ->check(tsrunner::cli::integer_in(1, 1 << 24));
  CLI::Option* concurrent_option =
      app.add_option("--concurrent-batches", batch.concurrent_batches,
                     "--input batches run at once, each with --threads threads (default 1); on "
                     "short inputs --threads 1 --concurrent-batches <cores> is fastest")
          ->check(tsrunner::cli::integer_in(1, tsrunner::kMaxConcurrentBatches));
  app.add_flag("--raw", raw, "print every output tensor as JSON {shape, dtype, data}");
  bool tokens = false;
  app.add_flag("--tokens", tokens,
               "with --text: print the token ids instead of running the model, one JSON line per "
               "text keyed by the model's input names (what --ids and Runner.run take)");
  app.add_option("--threads", threads, "intra-op threads (0: LibTorch default)")
      ->check(tsrunner::cli::integer_in(0, tsrunner::kMaxThreads));
  app.add_flag("--debug", debug, "also show LibTorch's deprecation warnings (hidden by default)");
  std::string compute = "fp32";
  app.add_option("--compute", compute,
                 "fp32 (default) or bf16: Linear layers in bfloat16 on oneDNN (opt-in, less "
                 "exact; CPUs with AVX512_BF16 or AMX)")
      ->check(CLI::IsMember({"fp32", "bf16"}));
  tsrunner::RunnerOptions kernel_flags;
  tsrunner::cli::add_kernel_flags(app, kernel_flags);
  std::string expected_sha256;
  app.add_option("--expect-sha256", expected_sha256,
                 "refuse the model unless its content digest is this (docs/security.md)");

  tsrunner::cli::GenerateCliOptions generate_options;
  tsrunner::cli::add_generate_options(app, generate_options);

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
  static HideDeprecationWarnings hide_deprecations;  // outlives every LibTorch call
  if (!debug && !bench_options.debug) c10::WarningUtils::set_warning_handler(&hide_deprecations);

  try {
    if (info->parsed()) return run_info(info_path, info_json);
    if (bench->parsed()) return tsrunner::cli::run_bench(bench_options);
    if (serve->parsed()) return tsrunner::serve::run_serve(serve_options);
    if (model_path.empty()) throw UsageError("no model given; see tsrun --help");
    if (texts.empty() && !text_pairs.empty()) throw UsageError("--text-pair needs --text");
    tsrunner::RunnerOptions options;
    options.threads = threads;
    options.expected_sha256 = expected_sha256;
    options.compute = compute;
    tsrunner::cli::copy_kernel_flags(kernel_flags, options);
    if (tokens) {
      if (texts.empty() || !input_path.empty() || !id_lists.empty() || raw) {
        throw UsageError("--tokens takes --text (and --text-pair), nothing else");
      }
      tsrunner::cli::check_output_path(output_path);
      tsrunner::cli::AtomicOutput output(output_path);
      tsrunner::cli::print_tokens(model_path, texts, text_pairs, output.stream());
      output.commit();
      return 0;
    }
    if (!input_path.empty() || !texts.empty()) {
      if (!id_lists.empty() || raw || !decoder_id_lists.empty())
        throw UsageError("--ids/--decoder-ids/--raw cannot be mixed with --text or --input");
      if (!input_path.empty() && !texts.empty())
        throw UsageError("use --text or --input, not both");
      if (input_path.empty() && (window_option->count() > 0 || concurrent_option->count() > 0))
        throw UsageError("--window and --concurrent-batches need --input");
      batch.input = input_path;
      batch.output = output_path;
      // Before any work: a run must not fail at its very end on a path it could have checked.
      if (input_path.empty()) {
        tsrunner::cli::check_output_path(output_path);
      } else {
        tsrunner::cli::check_batch_paths(batch);
      }
      // The model file is opened once, here (docs/security.md); what it is decides the mode.
      options.kernel_path = kernel_path_for(options, input_path.empty());
      options.optimize_graph = !input_path.empty();  // --text is one call: see one_shot_note
      const tsrunner::Runner runner(model_path, options);
      if (tsrunner::cli::is_generation_export(runner.manifest())) {
        if (!text_pairs.empty()) throw UsageError("generation takes --text without --text-pair");
        if (top_k > 0) generate_options.params.top_k = static_cast<int64_t>(top_k);
        return tsrunner::cli::run_generate(runner, texts, input_path, output_path,
                                           generate_options);
      }
      if (!generate_options.first_given().empty()) {
        throw UsageError(generate_options.first_given() +
                         " is for generation exports (causal-lm with a KV cache); this one is " +
                         runner.manifest().task);
      }
      if (top_k > 0) task_options.top_k = top_k;
      if (doc_stride_option->count() > 0) task_options.doc_stride = doc_stride;
      if (prompt_name_option->count() > 0) task_options.prompt_name = prompt_name;
      return run_predict(runner, texts, text_pairs, input_path.empty() ? nullptr : &batch,
                         output_path, task_options);
    }
    if (id_lists.empty()) {
      throw UsageError("nothing to run: pass --ids, --text or --input (see tsrun --help)");
    }
    if (!raw) throw UsageError("--ids needs --raw (for task-aware output pass --text)");
    if (output_path != "-") throw UsageError("--output needs --text or --input");
    for (const CLI::Option* option :
         {window_option, concurrent_option, doc_stride_option, prompt_name_option}) {
      if (option->count() > 0) throw UsageError(option->get_name() + " needs --text or --input");
    }
    options.optimize_graph = false;  // one call: see one_shot_note
    options.kernel_path = kernel_path_for(options, true);
    return run_raw(model_path, id_lists, decoder_id_lists, options);
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
