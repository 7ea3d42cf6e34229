#pragma once

#include <cstddef>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tsrunner/prediction.h"
#include "tsrunner/runner.h"
#include "tsrunner/texts.h"
#include "tsrunner/thread_pool.h"
#include "tsrunner/tokenizer.h"

namespace tsrunner {

// The most batches Pipeline runs at once (each on its own thread).
inline constexpr size_t kMaxConcurrentBatches = 1024;

// Text in, answers out: tokenizes with the export's own tokenizer, runs the model in batches
// of similar length and turns the outputs into the task's answer (see prediction.h):
// feature-extraction (the model's "sentence_embedding" output when the export has one;
// otherwise mean or CLS pooling of its first output, optionally normalised, from the
// manifest's "pooling", mean without normalisation when the manifest has none),
// text-classification, fill-mask, token-classification and question-answering (question as
// the text, context as the pair), each matching the Hugging Face pipeline of that task.
// Model inputs are found by the manifest's input roles, outputs by the manifest's output
// names. Thread-safe like Runner.
class Pipeline {
 public:
  // `runner` must outlive the pipeline (and every call on it). Throws Error when the export's task
  // has no task-aware output yet, or its inputs cannot be made from text. Concurrent batches run on
  // `pool` (nullptr: a pool of the pipeline's own, grown to what calls ask for and kept).
  Pipeline(const Runner& runner, Tokenizer tokenizer, TaskOptions options = {},
           std::shared_ptr<ThreadPool> pool = nullptr);
  // The same over the runner's own tokenizer (Runner::tokenizer(): the one parsed from the
  // verified archive), shared rather than copied.
  explicit Pipeline(const Runner& runner, TaskOptions options = {},
                    std::shared_ptr<ThreadPool> pool = nullptr);

  const Runner& runner() const { return runner_; }
  const Tokenizer& tokenizer() const;

  // One prediction per text, in order. `pairs` is empty or as long as `texts` (both views:
  // a std::vector<std::string>, a std::vector<std::string_view>, a braced list or a pointer and
  // a count; nothing is copied). Texts are sorted by length and run `batch_size` at a time,
  // each batch padded only to its longest (to the export's fixed length when its shape contract
  // is fixed). `concurrent_batches` > 1 runs that many batches at once, on the calling thread
  // and on the pool's workers, each with the runner's intra-op thread count
  // (RunnerOptions::threads; 0: the calling thread's, at::get_num_threads()): use threads x
  // concurrent_batches <= cores. The workers are started once and reused by later calls.
  std::vector<Prediction> predict(Texts texts, Texts pairs = {}, size_t batch_size = 32,
                                  size_t concurrent_batches = 1) const;
  // The same with task options for this call only (top_k, prompt_name, score_function, ...)
  // instead of the constructor's: one pipeline serves callers that ask for different options.
  // Throws InvalidInput for options the constructor would refuse.
  std::vector<Prediction> predict(Texts texts, Texts pairs, size_t batch_size,
                                  size_t concurrent_batches, const TaskOptions& options) const;

  // predict() on one of the pool's workers: returns at once; the future gives the predictions
  // or rethrows what predict() threw. The texts are moved in, so the caller's strings may go.
  // The pipeline (and its runner) must outlive the answer. Calls queue on the pool (one worker
  // unless the pool has more) and are refused with Error when ThreadPool::kDefaultQueueCapacity
  // wait already.
  std::future<std::vector<Prediction>> predict_async(std::vector<std::string> texts,
                                                     std::vector<std::string> pairs = {},
                                                     size_t batch_size = 32) const;

  // The model inputs for one text (and pair): one encoding, or for question-answering with a
  // context too long for the export, one per overlapping window of the context
  // (TaskOptions::doc_stride).
  std::vector<Encoding> encode(std::string_view text,
                               std::optional<std::string_view> pair = std::nullopt) const;
  std::vector<Encoding> encode(std::string_view text, std::optional<std::string_view> pair,
                               const TaskOptions& options) const;

  // Runs already-tokenized, unpadded inputs the way predict() runs texts: every encoding
  // sorted by length, `batch_size` at a time (`concurrent_batches` at once), each batch padded
  // to padded_length(); one prediction per input, in input order. An input is one encoding,
  // or several (the windows encode() makes of a long question-answering context: the best
  // answer among them wins, the earliest on a tie). `texts` and `pairs` are as in
  // predict_encoded(), one per input.
  std::vector<Prediction> predict_encodings(std::vector<std::vector<Encoding>> inputs,
                                            const std::vector<std::string_view>& texts,
                                            const std::vector<std::string_view>& pairs,
                                            size_t batch_size, size_t concurrent_batches = 1) const;
  std::vector<Prediction> predict_encodings(std::vector<std::vector<Encoding>> inputs,
                                            const std::vector<std::string_view>& texts,
                                            const std::vector<std::string_view>& pairs,
                                            size_t batch_size, size_t concurrent_batches,
                                            const TaskOptions& options) const;

  // Runs already-tokenized encodings (all of the same padded length) as one batch. `texts`
  // and `pairs` are the texts they came from (each empty or one per encoding): entity words,
  // answers and character offsets are taken from them.
  std::vector<Prediction> predict_encoded(const std::vector<Encoding>& batch,
                                          const std::vector<std::string_view>& texts = {},
                                          const std::vector<std::string_view>& pairs = {}) const;
  std::vector<Prediction> predict_encoded(const std::vector<Encoding>& batch,
                                          const std::vector<std::string_view>& texts,
                                          const std::vector<std::string_view>& pairs,
                                          const TaskOptions& options) const;

  // The length to pad a batch to: its longest, or the fixed length of a fixed-shape export.
  size_t padded_length(size_t longest) const;

 private:
  Pipeline(const Runner& runner, std::shared_ptr<const Tokenizer> tokenizer, TaskOptions options,
           std::shared_ptr<ThreadPool> pool);
  void check_not_moved_from() const;  // throws Error on a moved-from Pipeline

  // Task options checked against this export, with the prompt they name looked up.
  struct CallOptions {
    TaskOptions task;
    std::string prompt;  // put before every text (sentence-transformers prompts)
  };
  CallOptions resolve(const TaskOptions& options) const;  // throws InvalidInput
  std::vector<Encoding> encode(std::string_view text, std::optional<std::string_view> pair,
                               const CallOptions& call) const;
  std::vector<Prediction> predict(Texts texts, Texts pairs, size_t batch_size,
                                  size_t concurrent_batches, const CallOptions& call) const;
  std::vector<Prediction> predict_encodings(std::vector<std::vector<Encoding>> inputs,
                                            const std::vector<std::string_view>& texts,
                                            const std::vector<std::string_view>& pairs,
                                            size_t batch_size, size_t concurrent_batches,
                                            const CallOptions& call) const;
  std::vector<Prediction> predict_encoded(const std::vector<Encoding>& batch,
                                          const std::vector<std::string_view>& texts,
                                          const std::vector<std::string_view>& pairs,
                                          const CallOptions& call) const;

  const Runner& runner_;
  std::shared_ptr<const Tokenizer> tokenizer_;  // owned, or the runner's (not owned)
  CallOptions defaults_;                        // the constructor's options
  // Manifest inputs fed from each Encoding field, by role ("" when the export has none).
  std::string token_ids_input_;
  std::string attention_mask_input_;
  std::string token_type_ids_input_;
  // The manifest outputs the task reads, in the order predict_encoded() reads them.
  std::vector<std::string> task_outputs_;
  // feature-extraction: the model computes the sentence vector itself ("sentence_embedding").
  bool embedding_from_model_ = false;
  std::string pooling_mode_;
  bool normalize_ = false;            // the manifest's pooling normalises
  bool normalized_in_graph_ = false;  // a sentence-transformers Normalize module in the graph
  std::shared_ptr<ThreadPool> pool_;
};

}  // namespace tsrunner
