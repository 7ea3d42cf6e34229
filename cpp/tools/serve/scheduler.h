#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tsrunner/pipeline.h"

namespace tsrunner::serve {

class Metrics;

struct BatchingOptions {
  // A batch holds at most this many tokens, counted as padded (rows x longest row).
  size_t max_batch_tokens = 16384;
  size_t max_batch_requests = 64;  // inputs per batch
  // How long a worker waits for more inputs when the queue holds less than a full batch. 0: it
  // runs what waits; under load inputs gather while the workers are busy (measured: waiting 2 ms
  // gained nothing at 8 or 64 closed-loop clients and cost 2 ms per lone request).
  std::chrono::microseconds max_wait{0};
  size_t workers = 1;  // batches in flight at once, one per worker thread
  int intra_op_threads = 1;
  // A batch taken when no other batch runs and nothing else waits (a lone request), while the
  // machine runs nothing else (/proc/loadavg's runnable count), runs with this many intra-op
  // threads on the first worker, and the other workers take nothing until it ends (so the
  // cores are not oversubscribed). 0 or <= intra_op_threads: every batch runs with
  // intra_op_threads.
  int lone_batch_threads = 0;
};

// How a submission ended: one prediction per input, or one error for the whole submission.
struct Outcome {
  std::vector<Prediction> predictions;
  std::string error;           // empty on success
  bool invalid_input = false;  // the error is the input's fault (InvalidInput), not the model's
  size_t tokens = 0;           // tokens of every input (unpadded)
};

// The texts of one request, already tokenized: one input per text (or text pair), each one
// encoding (or several windows for question-answering).
struct Submission {
  size_t model = 0;  // index into the scheduler's pipelines
  std::vector<std::vector<Encoding>> inputs;
  std::vector<std::string> texts;
  std::vector<std::string> pairs;  // empty, or one per input
  // Task options of this request (raw_scores: score_function "none"); inputs share a batch only
  // with inputs of equal options, and one pipeline serves them all.
  TaskOptions options;
  // Called once, on a worker thread, when every input has its prediction or one failed.
  std::function<void(Outcome)> done;
};

// Dynamic batching on a persistent pool of worker threads. Inputs of all requests wait in one
// queue per model; a free worker takes the oldest input and joins to it the waiting inputs of
// the most similar lengths (so the batch pads little) until max_batch_tokens,
// max_batch_requests or its share of the queue (split evenly over the idle workers), then runs the
// batch with Pipeline::predict_encodings. When a batch fails its inputs run again one by one, so a
// bad input fails only its own request. Raw jobs (the Open Inference Protocol's tensors) run on the
// same workers, before batches.
class Scheduler {
 public:
  Scheduler(std::vector<const Pipeline*> pipelines, BatchingOptions options, Metrics& metrics);
  ~Scheduler();  // stop()
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  void submit(Submission submission);
  // Runs `job` on a worker (it must not throw).
  void run(std::function<void()> job);
  // Inputs and jobs waiting.
  size_t queue_depth() const;
  // Finishes everything queued, then joins the workers.
  void stop();

 private:
  struct Request;
  struct Pending {
    std::shared_ptr<Request> request;
    size_t index;    // the input within its request
    size_t length;   // its longest encoding
    size_t windows;  // its encodings
    std::chrono::steady_clock::time_point queued;
  };

  void work(size_t index);
  // Takes the next batch of model `model` out of its queue (lock held).
  std::vector<Pending> take_batch(size_t model);
  void run_batch(size_t model, std::vector<Pending>& batch);
  void finish(Pending& pending, Prediction* prediction, const std::string& error,
              bool invalid_input);

  std::vector<const Pipeline*> pipelines_;
  BatchingOptions options_;
  Metrics& metrics_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<std::deque<Pending>> queues_;  // one per model, oldest first
  std::vector<size_t> queued_tokens_;        // per model
  std::deque<std::function<void()>> jobs_;
  size_t pending_inputs_ = 0;
  size_t busy_workers_ = 0;                     // running a batch
  bool lone_batch_running_ = false;             // a batch on lone_batch_threads: the others wait
  bool first_worker_busy_ = false;              // the others take work only while it is
  std::string loadavg_path_ = "/proc/loadavg";  // whether the cores are free for a lone batch
  // Other processes' runnable tasks at the last look (none yet: the first look decides).
  long last_other_runnable_ = std::numeric_limits<long>::max();
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace tsrunner::serve
