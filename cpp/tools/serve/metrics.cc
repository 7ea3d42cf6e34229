#include "metrics.h"

#include <charconv>

namespace tsrunner::serve {
namespace {

const std::vector<double> kSecondsBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                            0.25,  0.5,    1,     2.5,  5,     10};

std::string number(double value) {
  char buffer[32];
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, result.ptr);
}

void header(std::string& out, const std::string& name, const char* type, const char* help) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

}  // namespace

Metrics::Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds(std::move(upper_bounds)), counts(bounds.size() + 1, 0) {}

void Metrics::Histogram::observe(double value) {
  size_t i = 0;
  while (i < bounds.size() && value > bounds[i]) ++i;
  ++counts[i];
  sum += value;
  ++count;
}

void Metrics::Histogram::write(std::string& out, const std::string& name,
                               const std::string& labels) const {
  const std::string prefix = labels.empty() ? "" : labels + ",";
  size_t cumulative = 0;
  for (size_t i = 0; i < bounds.size(); ++i) {
    cumulative += counts[i];
    out += name + "_bucket{" + prefix + "le=\"" + number(bounds[i]) + "\"} " +
           std::to_string(cumulative) + "\n";
  }
  out += name + "_bucket{" + prefix + "le=\"+Inf\"} " + std::to_string(count) + "\n";
  const std::string braces = labels.empty() ? "" : "{" + labels + "}";
  out += name + "_sum" + braces + " " + number(sum) + "\n";
  out += name + "_count" + braces + " " + std::to_string(count) + "\n";
}

Metrics::Metrics()
    : batch_inputs_({1, 2, 4, 8, 16, 32, 64, 128, 256}),
      batch_tokens_({64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768}),
      batch_seconds_(kSecondsBounds),
      queue_seconds_(kSecondsBounds) {}

void Metrics::observe_request(const std::string& route, int status, double seconds) {
  const std::lock_guard<std::mutex> lock(mutex_);
  ++requests_[{route, status}];
  auto it = request_seconds_.find(route);
  if (it == request_seconds_.end()) it = request_seconds_.emplace(route, kSecondsBounds).first;
  it->second.observe(seconds);
}

void Metrics::observe_batch(size_t inputs, size_t padded_tokens, double seconds) {
  const std::lock_guard<std::mutex> lock(mutex_);
  batch_inputs_.observe(static_cast<double>(inputs));
  batch_tokens_.observe(static_cast<double>(padded_tokens));
  batch_seconds_.observe(seconds);
  ++batches_;
}

void Metrics::count_lone_batch() {
  const std::lock_guard<std::mutex> lock(mutex_);
  ++lone_batches_;
}

void Metrics::observe_queue_time(double seconds) {
  const std::lock_guard<std::mutex> lock(mutex_);
  queue_seconds_.observe(seconds);
}

void Metrics::add_input_tokens(size_t tokens) {
  const std::lock_guard<std::mutex> lock(mutex_);
  input_tokens_ += tokens;
}

void Metrics::generation_started(size_t sequences) {
  const std::lock_guard<std::mutex> lock(mutex_);
  generating_ += sequences;
}

void Metrics::generation_finished(const std::string& finish_reason, size_t prompt_tokens,
                                  size_t generated_tokens) {
  const std::lock_guard<std::mutex> lock(mutex_);
  --generating_;
  ++generations_[finish_reason];
  prompt_tokens_ += prompt_tokens;
  generated_tokens_ += generated_tokens;
}

std::string Metrics::prometheus(size_t queue_depth, size_t requests_in_flight) const {
  const std::lock_guard<std::mutex> lock(mutex_);
  std::string out;
  header(out, "tsrun_requests_total", "counter", "HTTP requests answered, by route and status.");
  for (const auto& [key, count] : requests_) {
    out += "tsrun_requests_total{route=\"" + key.first + "\",status=\"" +
           std::to_string(key.second) + "\"} " + std::to_string(count) + "\n";
  }
  header(out, "tsrun_request_duration_seconds", "histogram",
         "Time from a request read to its answer, by route.");
  for (const auto& [route, histogram] : request_seconds_) {
    histogram.write(out, "tsrun_request_duration_seconds", "route=\"" + route + "\"");
  }
  header(out, "tsrun_queue_depth", "gauge", "Inputs and jobs waiting for a worker.");
  out += "tsrun_queue_depth " + std::to_string(queue_depth) + "\n";
  header(out, "tsrun_requests_in_flight", "gauge", "Requests read and not yet answered.");
  out += "tsrun_requests_in_flight " + std::to_string(requests_in_flight) + "\n";
  header(out, "tsrun_input_tokens_total", "counter", "Tokens of the inputs run (unpadded).");
  out += "tsrun_input_tokens_total " + std::to_string(input_tokens_) + "\n";
  header(out, "tsrun_batches_total", "counter", "Batches run by the model.");
  out += "tsrun_batches_total " + std::to_string(batches_) + "\n";
  header(out, "tsrun_lone_batches_total", "counter",
         "Batches that ran alone with every core's threads (--lone-batch-threads).");
  out += "tsrun_lone_batches_total " + std::to_string(lone_batches_) + "\n";
  header(out, "tsrun_generating_sequences", "gauge",
         "Sequences submitted to a generator and not finished (running or waiting for a row).");
  out += "tsrun_generating_sequences " + std::to_string(generating_) + "\n";
  header(out, "tsrun_generations_total", "counter", "Generated sequences, by finish reason.");
  for (const auto& [reason, count] : generations_) {
    out +=
        "tsrun_generations_total{finish_reason=\"" + reason + "\"} " + std::to_string(count) + "\n";
  }
  header(out, "tsrun_prompt_tokens_total", "counter", "Prompt tokens of finished generations.");
  out += "tsrun_prompt_tokens_total " + std::to_string(prompt_tokens_) + "\n";
  header(out, "tsrun_generated_tokens_total", "counter", "Tokens generated (EOS not counted).");
  out += "tsrun_generated_tokens_total " + std::to_string(generated_tokens_) + "\n";
  header(out, "tsrun_batch_inputs", "histogram", "Inputs per batch.");
  batch_inputs_.write(out, "tsrun_batch_inputs", "");
  header(out, "tsrun_batch_tokens", "histogram", "Padded tokens per batch (rows x length).");
  batch_tokens_.write(out, "tsrun_batch_tokens", "");
  header(out, "tsrun_batch_duration_seconds", "histogram", "Model time per batch.");
  batch_seconds_.write(out, "tsrun_batch_duration_seconds", "");
  header(out, "tsrun_queue_seconds", "histogram", "Time an input waited for its batch.");
  queue_seconds_.write(out, "tsrun_queue_seconds", "");
  return out;
}

}  // namespace tsrunner::serve
