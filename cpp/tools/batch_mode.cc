#include "batch_mode.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "atomic_output.h"
#include "input_line.h"
#include "progress.h"
#include "tsrunner/errors.h"
#include "tsrunner/prediction_json.h"
#include "tsrunner/request_queue.h"

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

// One window of lines on its way through the request queue: the lines that parsed are
// submitted, the others are answered in place.
struct WindowInFlight {
  std::vector<LineInput> lines;
  std::vector<size_t> good;  // lines that parsed, in input order
  std::future<std::vector<Prediction>> predictions;
};

WindowInFlight submit_window(RequestQueue& queue, std::vector<LineInput> window,
                             const BatchOptions& options) {
  WindowInFlight flight;
  flight.lines = std::move(window);
  QueueSubmission submission;
  submission.batch_size = options.batch_size;
  submission.options = options.task;
  for (size_t i = 0; i < flight.lines.size(); ++i) {
    LineInput& line = flight.lines[i];
    if (line.encodings.empty()) continue;
    flight.good.push_back(i);
    submission.inputs.push_back(std::move(line.encodings));
    submission.texts.push_back(line.text);
    submission.pairs.push_back(line.text_pair);
    submission.choices.push_back(std::move(line.choices));
  }
  auto promise = std::make_shared<std::promise<std::vector<Prediction>>>();
  flight.predictions = promise->get_future();
  submission.done = [promise](QueueOutcome outcome) {
    if (outcome.error.empty()) {
      promise->set_value(std::move(outcome.predictions));
    } else {
      promise->set_exception(std::make_exception_ptr(Error(outcome.error)));
    }
  };
  queue.submit(std::move(submission));
  return flight;
}

// The window's answers in input order (waits for its predictions).
std::vector<std::string> answers_of(WindowInFlight& flight) {
  std::vector<std::string> answers(flight.lines.size());
  for (size_t i = 0; i < flight.lines.size(); ++i) {
    const LineInput& line = flight.lines[i];
    if (line.error.empty()) continue;  // submitted
    answers[i] = with_id(line.id_json, json{{"line", line.line}, {"error", line.error}}.dump(
                                           -1, ' ', false, json::error_handler_t::replace));
  }
  const std::vector<Prediction> predictions = flight.predictions.get();
  for (size_t k = 0; k < flight.good.size(); ++k) {
    const size_t i = flight.good[k];
    answers[i] = with_id(flight.lines[i].id_json, prediction_to_json(predictions[k]));
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

  // The batches run on the queue's workers while this thread reads and tokenizes the next
  // window: at most two windows are held at once.
  QueueOptions queue_options;
  queue_options.workers = options.concurrent_batches;
  queue_options.max_batch_requests = options.batch_size;
  queue_options.max_batch_tokens = std::numeric_limits<size_t>::max();  // batch_size bounds it
  RequestQueue queue(pipeline, queue_options);
  std::optional<WindowInFlight> in_flight;

  const size_t window_size = options.window;  // a window smaller than a batch runs smaller batches
  std::vector<LineInput> window;
  size_t line_number = 0;
  size_t bad_lines = 0;
  size_t bytes_read = 0;
  std::string line;
  size_t lines_submitted = 0, bytes_submitted = 0;
  auto write_in_flight = [&] {
    if (!in_flight) return;
    for (const std::string& answer : answers_of(*in_flight)) output.stream() << answer << '\n';
    output.stream().flush();
    in_flight.reset();
    progress.update(lines_submitted, bytes_submitted);
  };
  auto flush_window = [&] {
    WindowInFlight next = submit_window(queue, std::move(window), options);
    window.clear();
    write_in_flight();  // the previous window, while this one runs
    in_flight = std::move(next);
    lines_submitted = line_number;
    bytes_submitted = bytes_read;
  };
  while (std::getline(in, line)) {
    ++line_number;
    bytes_read += line.size() + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (is_blank(line)) continue;  // a trailing newline, or lines spaced for reading
    LineInput input = parse_input_line(pipeline, line, line_number);
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
  write_in_flight();
  output.commit();
  progress.finish(line_number);
  return bad_lines;
}

}  // namespace tsrunner::cli
