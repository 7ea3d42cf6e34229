#pragma once

#include <string>
#include <vector>

#include "tsrunner/generator.h"
#include "tsrunner/runner.h"

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace tsrunner::cli {

// tsrun's generation options (--max-new-tokens, --temperature, --top-p, --seed, --stop, ...).
struct GenerateCliOptions {
  GenerationParams params;
  std::vector<std::string> stop;
  int64_t max_batch = 8;
  bool greedy = false;
  std::vector<CLI::Option*> added;  // what add_generate_options registered

  // The first generation option given on the command line ("" when none was).
  std::string first_given() const;
};
void add_generate_options(CLI::App& app, GenerateCliOptions& options);

// `tsrun gen.pt --text ...`: one --text streams its continuation to stdout as it is made; several
// print one continuation per line, in order. `--input` JSON lines ({"text"} or {"input_ids"},
// optional "id" passed through, per-line "max_new_tokens", "temperature", ...) answer one JSON
// line each: {"id", "text", "token_ids", "finish_reason", "prompt_tokens"}, or {"line", "error"}.
// Returns the exit code.
// The runner is the caller's (tsrun opens the model file once, to load it).
int run_generate(const Runner& runner, const std::vector<std::string>& texts,
                 const std::string& input_path, const std::string& output_path,
                 GenerateCliOptions options);

}  // namespace tsrunner::cli
