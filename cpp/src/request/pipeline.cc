#include "tsrunner/pipeline.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <numeric>

#include "tsrunner/errors.h"

namespace tsrunner {
namespace {

std::string_view text_at(const std::vector<std::string_view>& texts, size_t i) {
  return i < texts.size() ? texts[i] : std::string_view();
}

// `texts` (the first texts or the pairs) is empty or has one entry per input.
void check_text_count(const std::vector<std::string_view>& texts, const char* name, size_t inputs) {
  if (texts.empty() || texts.size() == inputs) return;
  throw InvalidInput(std::string("got ") + std::to_string(texts.size()) + " " + name + " for " +
                     std::to_string(inputs) + " inputs (give none or one per input)");
}

// Of two answers to one question from different context windows: is `candidate` better?
bool better_answer(const Prediction& candidate, const Prediction& current) {
  if (!candidate.answer) return false;
  return !current.answer || candidate.answer->score > current.answer->score;
}

// The runner's own tokenizer, borrowed (the runner outlives the pipeline: an empty owner, so no
// deleter); null with `reason` set when the export has none that loads.
std::shared_ptr<const Tokenizer> runner_tokenizer(const Runner& runner, std::string& reason) {
  try {
    return std::shared_ptr<const Tokenizer>(std::shared_ptr<void>(), &runner.tokenizer());
  } catch (const LoadError& error) {
    reason = error.what();
    return nullptr;
  }
}

}  // namespace

Pipeline::Pipeline(const Runner& runner, Tokenizer tokenizer, TaskOptions options,
                   std::shared_ptr<ThreadPool> pool)
    : runner_(runner),
      encoder_(std::make_unique<InputEncoder>(
          runner.manifest(), std::make_shared<const Tokenizer>(std::move(tokenizer)))),
      predictor_(std::make_unique<Predictor>(runner, encoder_->shared_tokenizer())),
      defaults_(std::move(options)),
      pool_(pool ? std::move(pool) : std::make_shared<ThreadPool>()) {
  check(defaults_);
}

Pipeline::Pipeline(const Runner& runner, TaskOptions options, std::shared_ptr<ThreadPool> pool)
    : runner_(runner),
      predictor_(nullptr),
      defaults_(std::move(options)),
      pool_(pool ? std::move(pool) : std::make_shared<ThreadPool>()) {
  std::string reason;
  std::shared_ptr<const Tokenizer> tokenizer = runner_tokenizer(runner, reason);
  // The task is checked first: an export no pipeline can serve says so, not "no tokenizer".
  predictor_ = std::make_unique<Predictor>(runner, tokenizer);
  encoder_ = std::make_unique<InputEncoder>(runner.manifest(), std::move(tokenizer), reason);
  check(defaults_);
}

void Pipeline::check(const TaskOptions& options) const {
  check_not_moved_from();
  predictor_->check(options);
  encoder_->check(options);
}

void Pipeline::check_not_moved_from() const {
  if (!encoder_ || !predictor_ || !pool_) throw Error("tsrunner::Pipeline used after move");
}

const Tokenizer& Pipeline::tokenizer() const { return encoder().tokenizer(); }

const InputEncoder& Pipeline::encoder() const {
  check_not_moved_from();
  return *encoder_;
}

const Predictor& Pipeline::predictor() const {
  check_not_moved_from();
  return *predictor_;
}

size_t Pipeline::padded_length(size_t longest) const { return encoder().padded_length(longest); }

std::vector<Prediction> Pipeline::predict_encoded(
    const std::vector<Encoding>& batch, const std::vector<std::string_view>& texts,
    const std::vector<std::string_view>& pairs) const {
  return predictor().predict(batch, texts, pairs, defaults_);
}

std::vector<Prediction> Pipeline::predict_encoded(const std::vector<Encoding>& batch,
                                                  const std::vector<std::string_view>& texts,
                                                  const std::vector<std::string_view>& pairs,
                                                  const TaskOptions& options) const {
  check(options);
  return predictor_->predict(batch, texts, pairs, options);
}

std::vector<Encoding> Pipeline::encode(std::string_view text,
                                       std::optional<std::string_view> pair) const {
  return encoder().encode(text, pair, defaults_);
}

std::vector<Encoding> Pipeline::encode(std::string_view text, std::optional<std::string_view> pair,
                                       const TaskOptions& options) const {
  check(options);
  return encoder_->encode(text, pair, options);
}

std::vector<Prediction> Pipeline::predict(Texts texts, Texts pairs, size_t batch_size,
                                          size_t concurrent_batches) const {
  return predict(texts, pairs, batch_size, concurrent_batches, defaults_);
}

std::vector<Prediction> Pipeline::predict(Texts texts, Texts pairs, size_t batch_size,
                                          size_t concurrent_batches,
                                          const TaskOptions& options) const {
  check(options);
  if (batch_size == 0) throw InvalidInput("batch_size must be at least 1");
  if (!pairs.empty() && pairs.size() != texts.size()) {
    throw InvalidInput("got " + std::to_string(texts.size()) + " texts but " +
                       std::to_string(pairs.size()) + " text pairs");
  }
  std::vector<std::vector<Encoding>> inputs;
  std::vector<std::string_view> text_views, pair_views;
  inputs.reserve(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    text_views.push_back(texts[i]);
    if (!pairs.empty()) pair_views.push_back(pairs[i]);
    try {
      inputs.push_back(pairs.empty() ? encoder_->encode(texts[i], std::nullopt, options)
                                     : encoder_->encode(texts[i], pairs[i], options));
    } catch (const InvalidInput& error) {
      throw InvalidInput("text " + std::to_string(i) + ": " + error.what());
    }
  }
  return predict_encodings(std::move(inputs), text_views, pair_views, batch_size,
                           concurrent_batches, options);
}

std::vector<Prediction> Pipeline::predict_choices(
    Texts texts, const std::vector<std::vector<std::string>>& choices, size_t batch_size,
    size_t concurrent_batches, const std::optional<TaskOptions>& options) const {
  const TaskOptions& call = options ? *options : defaults_;
  check(call);
  if (choices.size() != texts.size()) {
    throw InvalidInput("got " + std::to_string(texts.size()) + " texts but " +
                       std::to_string(choices.size()) + " lists of choices");
  }
  std::vector<std::vector<Encoding>> inputs;
  inputs.reserve(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::vector<std::string_view> views(choices[i].begin(), choices[i].end());
    try {
      inputs.push_back(encoder_->encode_choices(texts[i], views, call));
    } catch (const InvalidInput& error) {
      throw InvalidInput("text " + std::to_string(i) + ": " + error.what());
    }
  }
  std::vector<Prediction> predictions =
      predict_encodings(std::move(inputs), {}, {}, batch_size, concurrent_batches, call);
  for (size_t i = 0; i < predictions.size(); ++i) {
    for (size_t c = 0; c < predictions[i].choices.size(); ++c) {
      predictions[i].choices[c].choice = choices[i][c];
    }
  }
  return predictions;
}

std::future<std::vector<Prediction>> Pipeline::predict_async(std::vector<std::string> texts,
                                                             std::vector<std::string> pairs,
                                                             size_t batch_size) const {
  check_not_moved_from();
  // packaged_task keeps what predict throws for the future's get().
  auto task = std::make_shared<std::packaged_task<std::vector<Prediction>()>>(
      [this, texts = std::move(texts), pairs = std::move(pairs), batch_size] {
        return predict(texts, pairs, batch_size);
      });
  std::future<std::vector<Prediction>> answer = task->get_future();
  pool_->reserve(1);
  if (!pool_->try_submit([task] { (*task)(); })) {
    throw Error("the pipeline's worker queue is full (" +
                std::to_string(ThreadPool::kDefaultQueueCapacity) +
                " calls waiting); wait for some answers first");
  }
  return answer;
}

std::vector<Prediction> Pipeline::predict_encodings(std::vector<std::vector<Encoding>> inputs,
                                                    const std::vector<std::string_view>& texts,
                                                    const std::vector<std::string_view>& pairs,
                                                    size_t batch_size,
                                                    size_t concurrent_batches) const {
  return predict_encodings(std::move(inputs), texts, pairs, batch_size, concurrent_batches,
                           defaults_);
}

std::vector<Prediction> Pipeline::predict_encodings(std::vector<std::vector<Encoding>> inputs,
                                                    const std::vector<std::string_view>& texts,
                                                    const std::vector<std::string_view>& pairs,
                                                    size_t batch_size, size_t concurrent_batches,
                                                    const TaskOptions& options) const {
  check(options);
  if (batch_size == 0) throw InvalidInput("batch_size must be at least 1");
  if (concurrent_batches == 0 || concurrent_batches > kMaxConcurrentBatches) {
    throw InvalidInput("concurrent_batches must be between 1 and " +
                       std::to_string(kMaxConcurrentBatches) + ", not " +
                       std::to_string(concurrent_batches));
  }
  check_text_count(texts, "texts", inputs.size());
  check_text_count(pairs, "pairs", inputs.size());
  const Task task = runner_.manifest().task_kind;
  if (task == Task::kMultipleChoice) {
    return predict_questions(std::move(inputs), batch_size, concurrent_batches, options);
  }
  // Each encoding runs on its own; `owner` remembers which input it belongs to.
  std::vector<Encoding> encodings;
  std::vector<size_t> owner;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string input = "input " + std::to_string(i);
    if (inputs[i].empty()) throw InvalidInput(input + " has no encoding");
    if (inputs[i].size() > 1 && task != Task::kQuestionAnswering) {
      throw InvalidInput(input + " has " + std::to_string(inputs[i].size()) +
                         " encodings; only question-answering inputs come as windows");
    }
    for (size_t w = 0; w < inputs[i].size(); ++w) {
      Encoding& encoding = inputs[i][w];
      encoding.validate(inputs[i].size() == 1 ? input : input + " window " + std::to_string(w));
      if (encoding.size() == 0) throw InvalidInput(input + " has no tokens");
      encodings.push_back(std::move(encoding));
      owner.push_back(i);
    }
  }
  // Similar lengths together, so each batch pads little; answers go back in input order.
  std::vector<size_t> order(encodings.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return encodings[a].size() < encodings[b].size(); });
  std::vector<Prediction> answers(encodings.size());
  const size_t batch_count = (order.size() + batch_size - 1) / batch_size;
  // Batch b takes its own slice of `order`: batches touch disjoint encodings and answer slots,
  // so they can run on different threads without locks.
  auto run_batch = [&](size_t b) {
    const size_t start = b * batch_size;
    const size_t end = std::min(order.size(), start + batch_size);
    std::vector<Encoding> batch;
    std::vector<std::string_view> batch_texts, batch_pairs;
    size_t longest = 0;
    for (size_t k = start; k < end; ++k) {
      batch.push_back(std::move(encodings[order[k]]));
      batch_texts.push_back(text_at(texts, owner[order[k]]));
      batch_pairs.push_back(text_at(pairs, owner[order[k]]));
      longest = std::max(longest, batch.back().size());
    }
    encoder_->pad(batch, padded_length(longest));
    std::vector<Prediction> batch_answers =
        predictor_->predict(batch, batch_texts, batch_pairs, options);
    for (size_t k = start; k < end; ++k) answers[order[k]] = std::move(batch_answers[k - start]);
  };
  // One thread per batch at once: this one and the pool's workers, each with this thread's
  // intra-op thread count. On short inputs, small matrix products leave a second core idle
  // part of the time (docs/benchmark-text.md).
  const size_t parallel = std::min(concurrent_batches, batch_count);
  if (parallel > 1) pool_->reserve(parallel - 1);
  pool_->parallel_for(batch_count, parallel, at::get_num_threads(), run_batch);

  // One prediction per input: its only encoding's, or its best window's.
  std::vector<Prediction> predictions(inputs.size());
  std::vector<bool> answered(inputs.size(), false);
  for (size_t e = 0; e < answers.size(); ++e) {
    const size_t i = owner[e];
    if (!answered[i] || better_answer(answers[e], predictions[i])) {
      predictions[i] = std::move(answers[e]);
      answered[i] = true;
    }
  }
  return predictions;
}

std::vector<Prediction> Pipeline::predict_questions(std::vector<std::vector<Encoding>> inputs,
                                                    size_t batch_size, size_t concurrent_batches,
                                                    const TaskOptions& options) const {
  auto longest_of = [](const std::vector<Encoding>& choices) {
    size_t longest = 0;
    for (const Encoding& encoding : choices) longest = std::max(longest, encoding.size());
    return longest;
  };
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string input = "input " + std::to_string(i);
    if (inputs[i].size() < 2) {
      throw InvalidInput(input + " has " + std::to_string(inputs[i].size()) +
                         " choices; a multiple-choice question needs two or more");
    }
    for (size_t c = 0; c < inputs[i].size(); ++c) {
      inputs[i][c].validate(input + " choice " + std::to_string(c));
      if (inputs[i][c].size() == 0) throw InvalidInput(input + " has no tokens");
    }
  }
  // Questions with as many choices run together ([questions, choices, length]), similar lengths
  // next to each other.
  std::vector<size_t> order(inputs.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (inputs[a].size() != inputs[b].size()) return inputs[a].size() < inputs[b].size();
    return longest_of(inputs[a]) < longest_of(inputs[b]);
  });
  std::vector<std::pair<size_t, size_t>> batches;  // [start, end) of `order`
  for (size_t start = 0; start < order.size();) {
    size_t end = start + 1;
    while (end < order.size() && end - start < batch_size &&
           inputs[order[end]].size() == inputs[order[start]].size()) {
      ++end;
    }
    batches.emplace_back(start, end);
    start = end;
  }
  std::vector<Prediction> predictions(inputs.size());
  auto run_batch = [&](size_t b) {
    const auto [start, end] = batches[b];
    std::vector<std::vector<Encoding>> batch;
    size_t longest = 0;
    for (size_t k = start; k < end; ++k) {
      batch.push_back(std::move(inputs[order[k]]));
      longest = std::max(longest, longest_of(batch.back()));
    }
    for (std::vector<Encoding>& choices : batch) encoder_->pad(choices, padded_length(longest));
    std::vector<Prediction> answers = predictor_->predict_choices(batch, options);
    for (size_t k = start; k < end; ++k) predictions[order[k]] = std::move(answers[k - start]);
  };
  const size_t parallel = std::min(concurrent_batches, batches.size());
  if (parallel > 1) pool_->reserve(parallel - 1);
  pool_->parallel_for(batches.size(), parallel, at::get_num_threads(), run_batch);
  return predictions;
}

}  // namespace tsrunner
