#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "tsrunner/generator.h"

namespace tsrunner::serve {

class Metrics;

// The sequences of one HTTP request (each prompt, n times) submitted to a model's Generator,
// where they decode in one running batch with every other request's (continuous batching).
struct GenerationJob {
  std::vector<std::vector<int64_t>> prompts;  // one per sequence
  std::vector<GenerationParams> params;       // one per sequence
  // On the generator's decoding thread, for every step of sequence `index`; false cancels it
  // (its row is freed at the next step). May be empty.
  std::function<bool(size_t index, const GenerationChunk&)> on_chunk;
  // Once, on a waiting thread, when every sequence has finished: their results in order, or
  // the model's error (then `results` is empty).
  std::function<void(std::vector<GenerationResult> results, std::exception_ptr error)> on_done;
};

// Runs jobs on Generators and counts the threads that wait for them, so that shutdown can wait
// until none is left (they touch the service and the HTTP server when they answer).
class GenerationJobs {
 public:
  explicit GenerationJobs(Metrics& metrics) : metrics_(metrics) {}
  ~GenerationJobs() { wait_idle(); }

  // Submits every sequence at once (Generator::submit) and answers through `on_done` from a
  // thread of its own. Throws (nothing submitted) what Generator::submit throws for the first
  // sequence it refuses: InvalidInput.
  void start(const Generator& generator, GenerationJob job);
  // Blocks until every started job has called its on_done.
  void wait_idle();

 private:
  Metrics& metrics_;
  std::mutex mutex_;
  std::condition_variable idle_;
  size_t running_ = 0;
};

}  // namespace tsrunner::serve
