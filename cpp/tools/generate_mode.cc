#include "generate_mode.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <iostream>
#include <optional>

#include "atomic_output.h"
#include "range_check.h"
#include "tsrunner/errors.h"
#include "tsrunner/manifest.h"

namespace tsrunner::cli {
namespace {

using nlohmann::json;

template <typename T>
void take(const json& line, const char* name, std::optional<T>& field) {
  if (line.contains(name) && !line[name].is_null()) field = line[name].get<T>();
}

// One JSON line: the prompt (as ids) and its parameters over the command line's.
struct Request {
  size_t line = 0;
  std::string id_json;  // empty: the line had no id
  std::vector<int64_t> ids;
  GenerationParams params;
  std::string error;
};

Request parse_line(const std::string& text, size_t number, const Tokenizer* tokenizer,
                   const GenerationParams& base) {
  Request request;
  request.line = number;
  request.params = base;
  try {
    const json line = json::parse(text);
    if (!line.is_object()) throw InvalidInput("a line must be a JSON object");
    if (line.contains("id")) request.id_json = line["id"].dump();
    if (line.contains("input_ids")) {
      request.ids = line["input_ids"].get<std::vector<int64_t>>();
    } else if (line.contains("text") && line["text"].is_string()) {
      if (tokenizer == nullptr) throw InvalidInput("this export has no tokenizer: send input_ids");
      request.ids = tokenizer->encode(line["text"].get<std::string>()).ids;
    } else {
      throw InvalidInput("a line needs \"text\" (a string) or \"input_ids\"");
    }
    GenerationParams& p = request.params;
    take(line, "max_new_tokens", p.max_new_tokens);
    take(line, "min_new_tokens", p.min_new_tokens);
    take(line, "do_sample", p.do_sample);
    take(line, "temperature", p.temperature);
    take(line, "top_k", p.top_k);
    take(line, "top_p", p.top_p);
    take(line, "min_p", p.min_p);
    take(line, "repetition_penalty", p.repetition_penalty);
    take(line, "seed", p.seed);
    take(line, "num_beams", p.num_beams);
    take(line, "length_penalty", p.length_penalty);
    if (line.contains("early_stopping") && !line["early_stopping"].is_null()) {
      const json& early = line["early_stopping"];
      p.early_stopping = early.is_boolean() ? std::string(early.get<bool>() ? "true" : "false")
                                            : early.get<std::string>();
    }
    if (line.contains("stop")) {
      p.stop = line["stop"].is_string() ? std::vector<std::string>{line["stop"].get<std::string>()}
                                        : line["stop"].get<std::vector<std::string>>();
    }
  } catch (const json::exception& error) {
    request.error = std::string("bad JSON line: ") + error.what();
  } catch (const Error& error) {
    request.error = error.what();
  }
  return request;
}

json result_json(const Request& request, const GenerationResult& result) {
  json answer = json::object();
  if (!request.id_json.empty()) answer["id"] = json::parse(request.id_json);
  answer["text"] = result.text;
  answer["token_ids"] = result.token_ids;
  answer["finish_reason"] = result.finish_reason;
  answer["prompt_tokens"] = result.prompt_tokens;
  return answer;
}

}  // namespace

void add_generate_options(CLI::App& app, GenerateCliOptions& options) {
  GenerationParams& p = options.params;
  options.added.push_back(
      app.add_option("--max-new-tokens", p.max_new_tokens,
                     "generation: tokens to generate at most (default: the model's "
                     "generation_config.json, else 20, as HF generate)")
          ->check(integer_in(1, 1 << 24)));
  options.added.push_back(
      app.add_option("--min-new-tokens", p.min_new_tokens, "generation: EOS is refused before this")
          ->check(integer_in(0, 1 << 24)));
  options.added.push_back(app.add_option("--temperature", p.temperature,
                                         "generation: sample at this temperature (0: greedy)"));
  options.added.push_back(
      app.add_option("--top-p", p.top_p, "generation: nucleus sampling mass, in (0, 1]"));
  options.added.push_back(app.add_option(
      "--min-p", p.min_p, "generation: drop tokens below min-p x the top probability"));
  options.added.push_back(app.add_option("--repetition-penalty", p.repetition_penalty,
                                         "generation: > 1 discourages repeats"));
  options.added.push_back(app.add_option("--no-repeat-ngram-size", p.no_repeat_ngram_size,
                                         "generation: never repeat an n-gram of this size"));
  options.added.push_back(
      app.add_option("--seed", p.seed, "generation: the sampler's seed (same seed, same text)"));
  options.added.push_back(
      app.add_option("--num-beams", p.num_beams,
                     "generation: beam search with this many beams (default: the model's "
                     "generation_config.json, else 1)")
          ->check(integer_in(1, 256)));
  options.added.push_back(
      app.add_option("--length-penalty", p.length_penalty,
                     "generation: beam search scores a finished beam sum(logprobs) / length^this"));
  options.added.push_back(
      app.add_option("--early-stopping", p.early_stopping,
                     "generation: beam search stops when num_beams are done (true), by HF's "
                     "heuristic (false) or never")
          ->check(CLI::IsMember({"true", "false", "never"})));
  options.added.push_back(app.add_option("--stop", options.stop,
                                         "generation: stop before this text (repeat, at most 4)")
                              ->allow_extra_args(false)
                              ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll));
  options.added.push_back(
      app.add_option("--max-batch", options.max_batch,
                     "generation: sequences decoded together (more wait and join as others finish)")
          ->check(integer_in(1, 4096)));
  options.added.push_back(app.add_flag("--greedy", options.greedy, "generation: never sample"));
}

std::string GenerateCliOptions::first_given() const {
  for (const CLI::Option* option : added) {
    if (option->count() > 0) return option->get_name();
  }
  return {};
}

int run_generate(const Runner& runner, const std::vector<std::string>& texts,
                 const std::string& input_path, const std::string& output_path,
                 GenerateCliOptions options) {
  options.params.stop = options.stop;
  if (options.greedy) options.params.do_sample = false;
  const Generator generator(runner, GeneratorOptions{options.max_batch});
  if (input_path.empty()) {
    if (output_path != "-")
      throw InvalidInput("--text generation streams to stdout; drop --output");
    if (texts.size() == 1) {
      // Streams: every piece is flushed as soon as it is final.
      generator.generate(texts, options.params, [](const GenerationChunk& chunk) {
        std::cout << chunk.text << (chunk.finished ? "\n" : "") << std::flush;
        return true;
      });
      return 0;
    }
    for (const GenerationResult& result : generator.generate(texts, options.params)) {
      std::cout << json(result.text).dump() << "\n";
    }
    return 0;
  }
  const Tokenizer* tokenizer = runner.has_tokenizer() ? &runner.tokenizer() : nullptr;
  std::ifstream file;
  if (input_path != "-") {
    file.open(input_path);
    if (!file) throw InvalidInput("cannot read --input " + input_path);
  }
  std::istream& in = input_path == "-" ? std::cin : file;
  std::vector<Request> requests;
  std::string text;
  for (size_t number = 1; std::getline(in, text); ++number) {
    if (text.find_first_not_of(" \t\r\n") == std::string::npos) continue;
    requests.push_back(parse_line(text, number, tokenizer, options.params));
  }
  // Each good line alone is checked first, so a bad one is answered and the rest run.
  std::vector<size_t> good;
  std::vector<std::vector<int64_t>> prompts;
  std::vector<GenerationParams> params;
  for (size_t i = 0; i < requests.size(); ++i) {
    Request& request = requests[i];
    if (request.error.empty()) {
      try {
        generator.check(request.ids, request.params);
      } catch (const Error& error) {
        request.error = error.what();
      }
    }
    if (!request.error.empty()) continue;
    good.push_back(i);
    prompts.push_back(request.ids);
    params.push_back(request.params);
  }
  const std::vector<GenerationResult> results = generator.generate_ids(prompts, params);
  std::vector<std::string> answers(requests.size());
  for (size_t k = 0; k < good.size(); ++k) {
    answers[good[k]] = result_json(requests[good[k]], results[k])
                           .dump(-1, ' ', false, json::error_handler_t::replace);
  }
  size_t bad = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    if (!answers[i].empty()) continue;
    ++bad;
    json answer = {{"line", requests[i].line}, {"error", requests[i].error}};
    if (!requests[i].id_json.empty()) answer["id"] = json::parse(requests[i].id_json);
    answers[i] = answer.dump(-1, ' ', false, json::error_handler_t::replace);
  }
  AtomicOutput output(output_path);
  for (const std::string& answer : answers) output.stream() << answer << "\n";
  output.commit();
  if (bad > 0) {
    std::cerr << "tsrun: error: " << bad << " bad input line(s) answered with "
              << "{\"line\", \"error\"}; every other line has its result\n";
    return 2;
  }
  return 0;
}

}  // namespace tsrunner::cli
