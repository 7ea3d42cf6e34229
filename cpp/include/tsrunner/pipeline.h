#pragma once

#include <cstddef>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tsrunner/export.h"
#include "tsrunner/input_encoder.h"
#include "tsrunner/prediction.h"
#include "tsrunner/predictor.h"
#include "tsrunner/runner.h"
#include "tsrunner/texts.h"
#include "tsrunner/thread_pool.h"
#include "tsrunner/tokenizer.h"

namespace tsrunner {

// The most batches Pipeline runs at once (each on its own thread).
inline constexpr size_t kMaxConcurrentBatches = 1024;

// Text in, answers out: the request path of one export, in one object. Its InputEncoder turns
// texts (or token ids) into encodings, batches of similar length are padded and run by its
// Predictor, which turns the outputs into the task's answer (see prediction.h and predictor.h):
// feature-extraction, text-classification, fill-mask, token-classification,
// question-answering (question as the text, context as the pair) and multiple-choice (a text
// and its choices), each matching Hugging Face. Task options may be given per call; the
// constructor's are the defaults. Thread-safe like Runner. RequestQueue batches the calls of
// many threads over one Pipeline.
class TSR_API Pipeline {
 public:
  // `runner` must outlive the pipeline (and every call on it). Throws Error when the export's task
  // has no task-aware output yet, or its inputs cannot be made from text. Concurrent batches run on
  // `pool` (nullptr: a pool of the pipeline's own, grown to what calls ask for and kept).
  Pipeline(const Runner& runner, Tokenizer tokenizer, TaskOptions options = {},
           std::shared_ptr<ThreadPool> pool = nullptr);
  // The same over the runner's own tokenizer (Runner::tokenizer(): the one parsed from the
  // verified archive), shared rather than copied. An export without a usable tokenizer still
  // makes a pipeline: it takes token ids (encoder().encode_ids) and refuses text, saying why.
  explicit Pipeline(const Runner& runner, TaskOptions options = {},
                    std::shared_ptr<ThreadPool> pool = nullptr);

  const Runner& runner() const { return runner_; }
  // Throws InvalidInput when the export has no usable tokenizer (saying why).
  const Tokenizer& tokenizer() const;
  const InputEncoder& encoder() const;
  const Predictor& predictor() const;
  const TaskOptions& default_options() const { return defaults_; }

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
  // Throws InvalidInput for options the export cannot take.
  std::vector<Prediction> predict(Texts texts, Texts pairs, size_t batch_size,
                                  size_t concurrent_batches, const TaskOptions& options) const;

  // multiple-choice: one prediction per text, scoring `choices[i]` (two or more) against
  // `texts[i]`; Prediction::choices names each choice with its probability.
  std::vector<Prediction> predict_choices(Texts texts,
                                          const std::vector<std::vector<std::string>>& choices,
                                          size_t batch_size = 32, size_t concurrent_batches = 1,
                                          const std::optional<TaskOptions>& options = {}) const;

  // predict() on one of the pool's workers: returns at once; the future gives the predictions
  // or rethrows what predict() threw. The texts are moved in, so the caller's strings may go.
  // The pipeline (and its runner) must outlive the answer. Calls queue on the pool (one worker
  // unless the pool has more) and are refused with Error when ThreadPool::kDefaultQueueCapacity
  // wait already.
  std::future<std::vector<Prediction>> predict_async(std::vector<std::string> texts,
                                                     std::vector<std::string> pairs = {},
                                                     size_t batch_size = 32) const;

  // The model inputs for one text (and pair): InputEncoder::encode with the constructor's
  // options, or with `options`.
  std::vector<Encoding> encode(std::string_view text,
                               std::optional<std::string_view> pair = std::nullopt) const;
  std::vector<Encoding> encode(std::string_view text, std::optional<std::string_view> pair,
                               const TaskOptions& options) const;

  // Runs already-tokenized, unpadded inputs the way predict() runs texts: every encoding
  // sorted by length, `batch_size` at a time (`concurrent_batches` at once), each batch padded
  // to padded_length(); one prediction per input, in input order. An input is one encoding,
  // or several: the windows encode() makes of a long question-answering context (the best
  // answer among them wins, the earliest on a tie), or a multiple-choice question's choices
  // (InputEncoder::encode_choices; questions run together when they have as many choices).
  // `texts` and `pairs` are the texts the inputs came from, each empty or one per input.
  std::vector<Prediction> predict_encodings(std::vector<std::vector<Encoding>> inputs,
                                            const std::vector<std::string_view>& texts,
                                            const std::vector<std::string_view>& pairs,
                                            size_t batch_size, size_t concurrent_batches = 1) const;
  std::vector<Prediction> predict_encodings(std::vector<std::vector<Encoding>> inputs,
                                            const std::vector<std::string_view>& texts,
                                            const std::vector<std::string_view>& pairs,
                                            size_t batch_size, size_t concurrent_batches,
                                            const TaskOptions& options) const;

  // Runs already-tokenized encodings (all of the same padded length) as one batch:
  // Predictor::predict with the constructor's options, or with `options`.
  std::vector<Prediction> predict_encoded(const std::vector<Encoding>& batch,
                                          const std::vector<std::string_view>& texts = {},
                                          const std::vector<std::string_view>& pairs = {}) const;
  std::vector<Prediction> predict_encoded(const std::vector<Encoding>& batch,
                                          const std::vector<std::string_view>& texts,
                                          const std::vector<std::string_view>& pairs,
                                          const TaskOptions& options) const;

  // The length to pad a batch to: its longest, or the fixed length of a fixed-shape export.
  size_t padded_length(size_t longest) const;

  // Throws InvalidInput for options this export cannot take (what every call checks).
  void check(const TaskOptions& options) const;

 private:
  void check_not_moved_from() const;  // throws Error on a moved-from Pipeline
  std::vector<Prediction> predict_questions(std::vector<std::vector<Encoding>> inputs,
                                            size_t batch_size, size_t concurrent_batches,
                                            const TaskOptions& options) const;

  const Runner& runner_;
  std::unique_ptr<InputEncoder> encoder_;
  std::unique_ptr<Predictor> predictor_;
  TaskOptions defaults_;  // the constructor's options
  std::shared_ptr<ThreadPool> pool_;
};

}  // namespace tsrunner
