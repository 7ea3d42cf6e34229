#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "tsrunner/request_queue.h"

namespace tsrunner::serve {

// Counters and histograms for GET /metrics, in Prometheus' text format (version 0.0.4).
// Thread-safe. The request queue reports its batches here.
class Metrics : public QueueObserver {
 public:
  Metrics();

  void on_batch(size_t inputs, size_t padded_tokens, double seconds) override {
    observe_batch(inputs, padded_tokens, seconds);
  }
  void on_queued(double seconds) override { observe_queue_time(seconds); }
  void on_lone_batch() override { count_lone_batch(); }

  // `route` is a route pattern ("/embed", "/v2/models/{name}/infer"), never a raw path, so the
  // label set stays small.
  void observe_request(const std::string& route, int status, double seconds);
  void observe_batch(size_t inputs, size_t padded_tokens, double seconds);
  void observe_queue_time(double seconds);
  // A batch that ran alone on QueueOptions::lone_batch_threads.
  void count_lone_batch();
  void add_input_tokens(size_t tokens);
  // Generation (service_completions.cc, service_tgi.cc): sequences submitted to a Generator,
  // and each one's end with its finish reason ("stop", "length", "cancelled" when its client
  // left) and token counts.
  void generation_started(size_t sequences);
  void generation_finished(const std::string& finish_reason, size_t prompt_tokens,
                           size_t generated_tokens);

  std::string prometheus(size_t queue_depth, size_t requests_in_flight) const;

 private:
  struct Histogram {
    std::vector<double> bounds;
    std::vector<size_t> counts;  // one per bound, plus +Inf
    double sum = 0;
    size_t count = 0;

    explicit Histogram(std::vector<double> upper_bounds = {});
    void observe(double value);
    void write(std::string& out, const std::string& name, const std::string& labels) const;
  };

  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, size_t> requests_;  // (route, status) -> count
  std::map<std::string, Histogram> request_seconds_;        // by route
  Histogram batch_inputs_;
  Histogram batch_tokens_;
  Histogram batch_seconds_;
  Histogram queue_seconds_;
  size_t input_tokens_ = 0;
  size_t batches_ = 0;
  size_t lone_batches_ = 0;
  size_t generating_ = 0;
  std::map<std::string, size_t> generations_;  // finish reason -> sequences
  size_t prompt_tokens_ = 0;
  size_t generated_tokens_ = 0;
};

}  // namespace tsrunner::serve
