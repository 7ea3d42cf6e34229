#include "batch_mode.h"

#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>

#include "prediction_output.h"
#include "progress.h"
#include "tsrunner/errors.h"

namespace tsrunner::cli {
namespace {

using nlohmann::json;

struct LineInput {
  size_t line = 0;
  std::vector<Encoding> encodings;  // empty when the line is bad; QA: one per context window
  std::string error;
  std::string text, text_pair;  // the line's texts (empty for token ids): answers quote them
};

std::vector<int64_t> integer_list(const json& value, const char* key) {
  if (!value.is_array() || value.empty()) {
    throw InvalidInput(std::string("\"") + key + "\" must be a non-empty list of integers");
  }
  std::vector<int64_t> ids;
  ids.reserve(value.size());
  for (const json& item : value) {
    if (!item.is_number_integer()) {
      throw InvalidInput(std::string("\"") + key + "\" must be a non-empty list of integers");
    }
    ids.push_back(item.get<int64_t>());
  }
  return ids;
}

void check_range(const Manifest& manifest, const char* name, const std::vector<int64_t>& ids) {
  const TensorSpec* spec = manifest.find_input(name);
  if (!spec || !spec->value_range) return;
  const auto [low, high] = *spec->value_range;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < low || ids[i] >= high) {
      throw InvalidInput(std::string("\"") + name + "\"[" + std::to_string(i) +
                         "] = " + std::to_string(ids[i]) + " is outside [" + std::to_string(low) +
                         ", " + std::to_string(high) + ")");
    }
  }
}

Encoding encoding_from_ids(const Pipeline& pipeline, const json& object) {
  const Manifest& manifest = pipeline.runner().manifest();
  Encoding encoding;
  encoding.ids = integer_list(object["input_ids"], "input_ids");
  const size_t limit = manifest.shape_contract.max_sequence > 0
                           ? static_cast<size_t>(manifest.shape_contract.max_sequence)
                           : static_cast<size_t>(manifest.max_length);
  if (encoding.ids.size() > limit) {
    throw InvalidInput("\"input_ids\" has " + std::to_string(encoding.ids.size()) +
                       " tokens; the export takes at most " + std::to_string(limit));
  }
  check_range(manifest, "input_ids", encoding.ids);
  if (auto it = object.find("token_type_ids"); it != object.end() && !it->is_null()) {
    encoding.type_ids = integer_list(*it, "token_type_ids");
    if (encoding.type_ids.size() != encoding.ids.size()) {
      throw InvalidInput("\"token_type_ids\" must be as long as \"input_ids\"");
    }
    check_range(manifest, "token_type_ids", encoding.type_ids);
  } else {
    encoding.type_ids.assign(encoding.ids.size(), 0);
  }
  encoding.attention_mask.assign(encoding.ids.size(), 1);
  encoding.tokens.assign(encoding.ids.size(), std::string());
  encoding.offsets.assign(encoding.ids.size(), {0, 0});
  encoding.sequence_ids.assign(encoding.ids.size(), 0);
  return encoding;
}

std::vector<Encoding> parse_line(const Pipeline& pipeline, const std::string& line,
                                 LineInput& input) {
  const json object = json::parse(line, nullptr, false);
  if (object.is_discarded()) throw InvalidInput("not valid JSON");
  if (!object.is_object()) {
    throw InvalidInput("expected a JSON object like {\"text\": \"...\"}");
  }
  if (auto text = object.find("text"); text != object.end()) {
    if (!text->is_string()) throw InvalidInput("\"text\" must be a string");
    auto pair = object.find("text_pair");
    if (pair == object.end() || pair->is_null()) {
      std::vector<Encoding> encodings = pipeline.encode(text->get_ref<const std::string&>());
      input.text = text->get_ref<const std::string&>();
      return encodings;
    }
    if (!pair->is_string()) throw InvalidInput("\"text_pair\" must be a string");
    std::vector<Encoding> encodings =
        pipeline.encode(text->get_ref<const std::string&>(), pair->get_ref<const std::string&>());
    input.text = text->get_ref<const std::string&>();
    input.text_pair = pair->get_ref<const std::string&>();
    return encodings;
  }
  if (object.contains("input_ids")) return {encoding_from_ids(pipeline, object)};
  throw InvalidInput("missing \"text\" (or \"input_ids\")");
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
      answers[i] = json{{"line", window[i].line}, {"error", window[i].error}}.dump();
      continue;
    }
    good.push_back(i);
    inputs.push_back(std::move(window[i].encodings));
    texts.push_back(window[i].text);
    pairs.push_back(window[i].text_pair);
  }
  const std::vector<Prediction> predictions = pipeline.predict_encodings(
      std::move(inputs), texts, pairs, options.batch_size, options.concurrent_batches);
  for (size_t k = 0; k < good.size(); ++k) answers[good[k]] = prediction_to_json(predictions[k]);
  return answers;
}

// The temporary output file, removed if the run is interrupted by a signal.
char g_temp_path[4096] = {0};

void remove_temp_and_exit(int signal_number) {
  if (g_temp_path[0] != '\0') unlink(g_temp_path);
  _exit(128 + signal_number);
}

// Writes to a temporary file beside the target and renames it into place at the end, so a
// failed or interrupted run never leaves a partial output file.
class AtomicOutput {
 public:
  explicit AtomicOutput(const std::string& path) : path_(path) {
    if (path_ == "-") return;
    temp_ = path_ + ".tmp." + std::to_string(getpid());
    file_.open(temp_, std::ios::binary | std::ios::trunc);
    if (!file_) throw std::runtime_error("cannot write " + temp_ + ": " + std::strerror(errno));
    std::strncpy(g_temp_path, temp_.c_str(), sizeof(g_temp_path) - 1);
    std::signal(SIGINT, remove_temp_and_exit);
    std::signal(SIGTERM, remove_temp_and_exit);
  }
  ~AtomicOutput() {
    if (!temp_.empty() && !committed_) {
      file_.close();
      std::error_code ignored;
      std::filesystem::remove(temp_, ignored);
    }
    g_temp_path[0] = '\0';
  }
  std::ostream& stream() { return path_ == "-" ? std::cout : file_; }
  void commit() {
    stream().flush();
    if (!stream()) throw std::runtime_error("writing " + path_ + " failed");
    if (temp_.empty()) return;
    file_.close();
    std::filesystem::rename(temp_, path_);
    committed_ = true;
  }

 private:
  std::string path_;
  std::string temp_;
  std::ofstream file_;
  bool committed_ = false;
};

}  // namespace

size_t run_batch(const Pipeline& pipeline, const BatchOptions& options) {
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

  const size_t window_size = std::max(options.window, options.batch_size);
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
    LineInput input;
    input.line = line_number;
    try {
      input.encodings = parse_line(pipeline, line, input);
    } catch (const InvalidInput& error) {
      input.error = error.what();
      ++bad_lines;
      std::cerr << "tsrun: " << (options.input == "-" ? "<stdin>" : options.input) << ":"
                << line_number << ": " << error.what() << "\n";
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
