#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "tsrunner/export.h"
#include "tsrunner/pipeline.h"
#include "tsrunner/prediction.h"
#include "tsrunner/texts.h"

namespace tsrunner {

// How a RequestQueue forms batches and runs them.
struct QueueOptions {
  // A batch holds at most this many tokens, counted as padded (rows x longest row).
  size_t max_batch_tokens = 16384;
  size_t max_batch_requests = 64;  // inputs per batch
  // How long a worker waits for more inputs when the queue holds less than a full batch. 0: it
  // runs what waits; under load inputs gather while the workers are busy (measured in
  // docs/serve.md: waiting 2 ms gained nothing at 8 or 64 closed-loop clients and cost 2 ms per
  // lone request).
  std::chrono::microseconds max_wait{0};
  size_t workers = 1;  // batches in flight at once, one per worker thread
  // Intra-op threads of every worker; 0: the count of the thread that makes the queue
  // (at::get_num_threads()), so a queue made where torch.set_num_threads(1) ran keeps it.
  int intra_op_threads = 0;
  // A batch taken when no other batch runs and nothing else waits (a lone request), while the
  // machine runs nothing else (/proc/loadavg's runnable count), runs with this many intra-op
  // threads on the first worker, and the other workers take nothing until it ends (so the
  // cores are not oversubscribed). 0 or <= intra_op_threads: every batch runs with
  // intra_op_threads.
  int lone_batch_threads = 0;
};

// Told of every batch as it runs (tsrun serve's /metrics); called on worker threads, so it must
// be thread-safe and must not throw.
class TSR_API QueueObserver {
 public:
  virtual ~QueueObserver() = default;
  // A batch of `inputs` inputs (`padded_tokens` tokens with padding) ran in `seconds`.
  virtual void on_batch(size_t inputs, size_t padded_tokens, double seconds) = 0;
  // An input waited `seconds` from submission to the start of its batch.
  virtual void on_queued(double seconds) = 0;
  // A batch ran alone on QueueOptions::lone_batch_threads.
  virtual void on_lone_batch() = 0;
};

// What a queue has done since it was made.
struct QueueStats {
  uint64_t submissions = 0;
  uint64_t inputs = 0;          // inputs submitted
  uint64_t batches = 0;         // batches run (a failed batch rerun one by one counts each run)
  uint64_t batched_inputs = 0;  // inputs of the batches that ran
  uint64_t padded_tokens = 0;   // tokens of those batches, padding included
  uint64_t lone_batches = 0;
  size_t largest_batch = 0;  // inputs
};

// How a submission ended: one prediction per input, or one error for the whole submission.
struct QueueOutcome {
  std::vector<Prediction> predictions;
  std::string error;           // empty on success; "input N: ..." names the input at fault
  bool invalid_input = false;  // the error is the input's fault (InvalidInput), not the model's
  size_t tokens = 0;           // tokens of every input (unpadded)
};

// One caller's inputs, already tokenized: one input per text (or text pair), each one encoding
// (or the windows Pipeline::encode makes of a long question-answering context).
struct QueueSubmission {
  size_t model = 0;  // index into the queue's pipelines
  std::vector<std::vector<Encoding>> inputs;
  std::vector<std::string> texts;  // one per input (entity words, answers), or empty
  std::vector<std::string> pairs;  // empty, or one per input
  // multiple-choice: each input's choices (named in its answer), or empty.
  std::vector<std::vector<std::string>> choices;
  // Inputs share a batch only with inputs of equal options; one pipeline serves every option.
  TaskOptions options;
  // At most this many of this submission's inputs per batch, and its inputs join batches of at
  // most this many (0: QueueOptions::max_batch_requests).
  size_t batch_size = 0;
  // Called once, on a worker thread (or at once for no inputs), when every input has its
  // prediction or one failed. It must not throw.
  std::function<void(QueueOutcome)> done;
};

// The one request path of the library: callers on any number of threads submit inputs, which
// wait in one queue per model; a free worker takes the oldest and joins to it the waiting inputs
// of the most similar lengths and equal task options (so the batch pads little) until
// max_batch_tokens, max_batch_requests or its share of the queue (split evenly over the idle
// workers), runs the batch with Pipeline::predict_encodings, and answers each caller. A failed
// batch runs its inputs again one by one, so a bad input fails only its own submission. Raw jobs
// (the Open Inference Protocol's tensors) run on the same workers, before batches.
// Thread-safe; the pipelines (and their runners) must outlive the queue. A null pipeline is a
// model without task-aware output (tsrun serve's v2-only and generation exports): its slot takes
// raw jobs only, and submitting inputs to it is an InvalidInput.
class TSR_API RequestQueue {
 public:
  // One pipeline per model; null for a model served by raw jobs only (a task without task-aware
  // output): submissions to it are refused with InvalidInput.
  RequestQueue(std::vector<const Pipeline*> pipelines, QueueOptions options = {},
               QueueObserver* observer = nullptr);
  explicit RequestQueue(const Pipeline& pipeline, QueueOptions options = {},
                        QueueObserver* observer = nullptr);
  ~RequestQueue();  // stop()
  RequestQueue(const RequestQueue&) = delete;
  RequestQueue& operator=(const RequestQueue&) = delete;

  // Throws InvalidInput for a model index out of range, texts or pairs not one per input, or
  // no `done`; Error after stop().
  void submit(QueueSubmission submission);
  // Tokenizes on the calling thread (so callers tokenize in parallel) and submits; the future
  // gives one prediction per text, or throws InvalidInput / Error with the message of the input
  // at fault. `pairs` is empty or one per text.
  std::future<std::vector<Prediction>> submit(Texts texts, Texts pairs = {},
                                              const TaskOptions& options = {}, size_t model = 0,
                                              size_t batch_size = 0);
  // multiple-choice: scores `choices[i]` against `texts[i]`, as submit does for texts.
  std::future<std::vector<Prediction>> submit_choices(Texts texts,
                                                      std::vector<std::vector<std::string>> choices,
                                                      const TaskOptions& options = {},
                                                      size_t model = 0, size_t batch_size = 0);
  // Runs `job` on a worker, before waiting batches (it must not throw).
  void run(std::function<void()> job);

  // The pipeline of `model` (throws InvalidInput when out of range).
  const Pipeline& pipeline(size_t model = 0) const;
  size_t queue_depth() const;  // inputs and jobs waiting
  QueueStats stats() const;
  const QueueOptions& options() const;
  // Finishes everything queued, then joins the workers; later submissions throw Error.
  void stop();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tsrunner
