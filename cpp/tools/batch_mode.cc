#include "batch_mode.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "atomic_output.h"
#include "input_line.h"
#include "progress.h"
#include "tsrunner/errors.h"
#include "tsrunner/prediction_json.h"

namespace tsrunner::cli {
namespace {

using nlohmann::json;

// {"id": <the line's id>, ...answer}: the id first, so it is easy to find.
std::string with_id(const std::string& id_json, const std::string& answer) {
  if (id_json.empty()) return answer;
  const bool empty_object = answer == "{}";
  return "{\"id\":" + id_json + (empty_object ? "}" : "," + answer.substr(1));
}

bool is_blank(const std::string& line) {
  return line.find_first_not_of(" \t\r\n") == std::string::npos;
}

// Runs one window: sorted by length, batched, answered in input order.
std::vector<std::string> run_window(const Pipeline& pipeline, std::vector<LineInput>& window,
                                    const BatchOptions& options) {
  std::vector<std::string> answers(window.size());
  std::vector<size_t> good;  // lines that parsed, in input order
  std::vector<std::vector<Encoding>> inputs;
  std::vector<std::string_view> texts, pairs;
  for (size_t i = 0; i < window.size(); ++i) {
    if (window[i].encodings.empty()) {
      answers[i] = with_id(window[i].id_json,
                           json{{"line", window[i].line}, {"error", window[i].error}}.dump(
                               -1, ' ', false, json::error_handler_t::replace));
      continue;
    }
    good.push_back(i);
    inputs.push_back(std::move(window[i].encodings));
    texts.push_back(window[i].text);
    pairs.push_back(window[i].text_pair);
  }
  const std::vector<Prediction> predictions = pipeline.predict_encodings(
      std::move(inputs), texts, pairs, options.batch_size, options.concurrent_batches);
  for (size_t k = 0; k < good.size(); ++k) {
    answers[good[k]] = with_id(window[good[k]].id_json, prediction_to_json(predictions[k]));
  }
  return answers;
}

}  // namespace

void check_batch_paths(const BatchOptions& options) {
  if (options.input != "-") {
    std::error_code ec;
    if (std::filesystem::is_directory(options.input, ec)) {
      throw InvalidInput("--input " + options.input + " is a directory; name a JSON lines file");
    }
    if (!std::filesystem::exists(options.input, ec)) {
      throw InvalidInput("cannot read " + options.input + ": " + std::strerror(ENOENT));
    }
  }
  check_output_path(options.output);
}

size_t run_batch(const Pipeline& pipeline, const BatchOptions& options) {
  check_batch_paths(options);
  if (options.batch_size == 0) throw InvalidInput("--batch-size must be at least 1");
  if (options.window == 0) throw InvalidInput("--window must be at least 1");
  if (options.concurrent_batches == 0) {
    throw InvalidInput("--concurrent-batches must be at least 1");
  }
  std::ifstream file;
  std::optional<size_t> total_bytes;
  if (options.input != "-") {
    file.open(options.input, std::ios::binary);
    if (!file) throw InvalidInput("cannot read " + options.input + ": " + std::strerror(errno));
    std::error_code ec;
    const auto size = std::filesystem::file_size(options.input, ec);
    if (!ec) total_bytes = static_cast<size_t>(size);
  }
  std::istream& in = options.input == "-" ? std::cin : file;
  AtomicOutput output(options.output);
  Progress progress(total_bytes);

  const size_t window_size = options.window;  // a window smaller than a batch runs smaller batches
  std::vector<LineInput> window;
  size_t line_number = 0;
  size_t bad_lines = 0;
  size_t bytes_read = 0;
  std::string line;
  auto flush_window = [&] {
    for (const std::string& answer : run_window(pipeline, window, options)) {
      output.stream() << answer << '\n';
    }
    output.stream().flush();
    window.clear();
    progress.update(line_number, bytes_read);
  };
  while (std::getline(in, line)) {
    ++line_number;
    bytes_read += line.size() + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (is_blank(line)) continue;  // a trailing newline, or lines spaced for reading
    LineInput input = parse_input_line(pipeline, line, line_number, options.tokenizer_problem);
    if (!input.error.empty()) {
      ++bad_lines;
      std::cerr << "tsrun: " << (options.input == "-" ? "<stdin>" : options.input) << ":"
                << line_number << ": " << input.error << "\n";
    }
    window.push_back(std::move(input));
    if (window.size() >= window_size) flush_window();
  }
  if (in.bad()) throw std::runtime_error("reading " + options.input + " failed");
  if (!window.empty()) flush_window();
  output.commit();
  progress.finish(line_number);
  return bad_lines;
}

}  // namespace tsrunner::cli
