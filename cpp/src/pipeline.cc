#include "tsrunner/pipeline.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <functional>
#include <mutex>
#include <numeric>
#include <thread>

#include "task_outputs.h"
#include "tsrunner/errors.h"

namespace tsrunner {
namespace {

at::Tensor stack_field(const std::vector<Encoding>& batch, std::vector<int64_t> Encoding::* field) {
  const auto rows = static_cast<int64_t>(batch.size());
  const auto columns = static_cast<int64_t>(batch.front().size());
  at::Tensor tensor = at::empty({rows, columns}, at::kLong);
  int64_t* data = tensor.data_ptr<int64_t>();
  for (const Encoding& encoding : batch) {
    if (static_cast<int64_t>(encoding.size()) != columns) {
      throw InvalidInput("the encodings of one batch must be padded to the same length");
    }
    data = std::copy((encoding.*field).begin(), (encoding.*field).end(), data);
  }
  return tensor;
}

// One model output as contiguous float32 on the CPU, found by name.
at::Tensor output_named(const TensorMap& outputs, const std::string& name) {
  auto it = outputs.find(name);
  if (it == outputs.end()) throw Error("the model returned no \"" + name + "\" output");
  return it->second.to(at::kFloat).cpu().contiguous();
}

std::string_view text_at(const std::vector<std::string_view>& texts, size_t i) {
  return i < texts.size() ? texts[i] : std::string_view();
}

// Runs run_batch(0 .. batch_count - 1): on this thread, or with several batches at once, each
// on its own thread with this thread's intra-op thread count: on short inputs, small matrix
// products leave a second core idle part of the time (docs/benchmark-text.md). The first
// failure stops the others after their current batch and is rethrown here.
void run_batches(size_t batch_count, size_t concurrent_batches,
                 const std::function<void(size_t)>& run_batch) {
  const size_t workers = std::min(concurrent_batches, batch_count);
  if (workers <= 1) {
    for (size_t b = 0; b < batch_count; ++b) run_batch(b);
    return;
  }
  const int intra_op_threads = at::get_num_threads();
  std::atomic<size_t> next_batch{0};
  std::mutex failure_mutex;
  std::exception_ptr failure;
  auto record_failure = [&] {
    const std::lock_guard<std::mutex> lock(failure_mutex);
    if (!failure) failure = std::current_exception();
    next_batch = batch_count;  // the others stop after their current batch
  };
  std::vector<std::thread> threads;
  threads.reserve(workers);
  try {
    for (size_t w = 0; w < workers; ++w) {
      threads.emplace_back([&] {
        at::set_num_threads(intra_op_threads);
        for (size_t b = next_batch++; b < batch_count; b = next_batch++) {
          try {
            run_batch(b);
          } catch (...) {
            record_failure();
          }
        }
      });
    }
  } catch (...) {  // no thread could be started: stop the ones that were, then report it
    record_failure();
  }
  for (std::thread& thread : threads) thread.join();
  if (failure) std::rethrow_exception(failure);
}

// Of two answers to one question from different context windows: is `candidate` better?
bool better_answer(const Prediction& candidate, const Prediction& current) {
  if (!candidate.answer) return false;
  return !current.answer || candidate.answer->score > current.answer->score;
}

}  // namespace

Pipeline::Pipeline(const Runner& runner, Tokenizer tokenizer, TaskOptions options)
    : runner_(runner), tokenizer_(std::move(tokenizer)), options_(options) {
  const Manifest& manifest = runner_.manifest();
  const std::string& task = manifest.task;
  if (task != "feature-extraction" && task != "text-classification" && task != "fill-mask" &&
      task != "token-classification" && task != "question-answering") {
    throw Error("task-aware output for task \"" + task +
                "\" is not implemented yet; use raw outputs (tsrun --raw, Runner.run)");
  }
  if (task == "token-classification" && manifest.labels.empty()) {
    throw Error("the manifest has no labels; token-classification needs them");
  }
  if (task == "fill-mask" && !manifest.mask_token_id) {
    throw Error("the manifest has no mask_token_id; fill-mask needs it");
  }
  if (options_.max_answer_length == 0) throw InvalidInput("max_answer_length must be at least 1");
  pooling_mode_ = manifest.pooling ? manifest.pooling->mode : "mean";
  normalize_ = manifest.pooling && manifest.pooling->normalize;
  if (manifest.sentence_embedding) {
    embedding_output_ = manifest.sentence_embedding->output;
    prompt_ = manifest.sentence_embedding->prompt(options_.prompt_name.value_or(""));
  } else if (options_.prompt_name) {
    throw InvalidInput("prompt name \"" + *options_.prompt_name +
                       "\" given, but this export has no prompts (only sentence-transformers "
                       "models exported by tsrunner 0.1+ with schema 2 have them)");
  }
  if (embedding_output_.empty() && pooling_mode_ != "mean" && pooling_mode_ != "cls") {
    throw Error("pooling mode \"" + pooling_mode_ + "\" is not supported (mean, cls)");
  }
}

size_t Pipeline::padded_length(size_t longest) const {
  const ShapeContract& contract = runner_.manifest().shape_contract;
  if (contract.kind == "fixed" && contract.max_sequence > 0) {
    return std::max(longest, static_cast<size_t>(contract.max_sequence));
  }
  return longest;
}

std::vector<Prediction> Pipeline::predict_encoded(
    const std::vector<Encoding>& batch, const std::vector<std::string_view>& texts,
    const std::vector<std::string_view>& pairs) const {
  if (batch.empty()) return {};
  const Manifest& manifest = runner_.manifest();
  const at::Tensor mask = stack_field(batch, &Encoding::attention_mask);
  TensorMap inputs{{"input_ids", stack_field(batch, &Encoding::ids)}};
  if (manifest.find_input("attention_mask")) inputs.emplace("attention_mask", mask);
  if (manifest.find_input("token_type_ids")) {
    inputs.emplace("token_type_ids", stack_field(batch, &Encoding::type_ids));
  }
  const TensorMap outputs = runner_.run(inputs);
  std::vector<Prediction> predictions(batch.size());
  for (Prediction& prediction : predictions) prediction.task = manifest.task;
  const std::string& task = manifest.task;
  if (task == "feature-extraction") {
    // The model's own sentence embedding, or the token vectors (the manifest's first output,
    // last_hidden_state for encoders) pooled here as schema 1 archives say.
    const at::Tensor hidden = output_named(
        outputs, embedding_output_.empty() ? manifest.outputs.front().name : embedding_output_);
    at::Tensor pooled;
    if (!embedding_output_.empty()) {
      pooled = hidden;
    } else if (pooling_mode_ == "cls") {
      pooled = hidden.select(1, 0);
    } else {  // mean over real tokens, as sentence-transformers computes it
      const at::Tensor weights = mask.unsqueeze(-1).to(hidden.dtype());
      pooled = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1e-9);
    }
    if (normalize_ && embedding_output_.empty()) {
      pooled = pooled / pooled.norm(2, {1}, true).clamp_min(1e-12);
    }
    pooled = pooled.contiguous();
    const int64_t width = pooled.size(1);
    const float* data = pooled.data_ptr<float>();
    for (size_t i = 0; i < batch.size(); ++i) {
      predictions[i].embedding.assign(data + i * width, data + (i + 1) * width);
    }
  } else if (task == "text-classification") {
    const at::Tensor logits = output_named(outputs, "logits");  // [batch, labels]
    const auto count = static_cast<size_t>(logits.size(1));
    for (size_t i = 0; i < batch.size(); ++i) {
      predictions[i].labels =
          task_outputs::classify(logits.data_ptr<float>() + i * count, count, manifest.labels,
                                 options_.top_k, manifest.score_function);
    }
  } else if (task == "fill-mask") {
    const at::Tensor logits = output_named(outputs, "logits");  // [batch, sequence, vocab]
    const auto row = static_cast<size_t>(logits.size(1) * logits.size(2));
    for (size_t i = 0; i < batch.size(); ++i) {
      predictions[i].masks = task_outputs::fill_masks(
          batch[i], logits.data_ptr<float>() + i * row, static_cast<size_t>(logits.size(2)),
          *manifest.mask_token_id, options_.top_k.value_or(5), tokenizer_);
    }
  } else if (task == "token-classification") {
    const at::Tensor logits = output_named(outputs, "logits");  // [batch, sequence, labels]
    if (static_cast<size_t>(logits.size(2)) != manifest.labels.size()) {
      throw Error("the model scores " + std::to_string(logits.size(2)) + " labels but the " +
                  "manifest names " + std::to_string(manifest.labels.size()));
    }
    const auto row = static_cast<size_t>(logits.size(1) * logits.size(2));
    for (size_t i = 0; i < batch.size(); ++i) {
      predictions[i].entities =
          task_outputs::group_entities(batch[i], logits.data_ptr<float>() + i * row,
                                       manifest.labels, text_at(texts, i), tokenizer_);
    }
  } else {                                                            // question-answering
    const at::Tensor starts = output_named(outputs, "start_logits");  // [batch, sequence]
    const at::Tensor ends = output_named(outputs, "end_logits");
    const auto row = static_cast<size_t>(starts.size(1));
    for (size_t i = 0; i < batch.size(); ++i) {
      predictions[i].answer = task_outputs::best_answer(
          batch[i], starts.data_ptr<float>() + i * row, ends.data_ptr<float>() + i * row,
          text_at(pairs, i), options_.max_answer_length);
    }
  }
  return predictions;
}

std::vector<Encoding> Pipeline::encode(std::string_view text,
                                       std::optional<std::string_view> pair) const {
  if (!prompt_.empty()) {  // sentence-transformers prepends the prompt to the text itself
    return {tokenizer_.encode(prompt_ + std::string(text), pair)};
  }
  if (runner_.manifest().task != "question-answering" || !pair) {
    return {tokenizer_.encode(text, pair)};
  }
  // Transformers' question-answering pipeline: windows of min(max length, 384) tokens, and a
  // doc_stride of min(that / 2, 128) unless one is given.
  constexpr size_t kLongestWindow = 384, kLongestStride = 128;
  const int64_t max_length = runner_.manifest().max_length;
  if (max_length <= 0) return {tokenizer_.encode(text, pair)};  // the export never truncates
  const size_t window = std::min<size_t>(static_cast<size_t>(max_length), kLongestWindow);
  const size_t stride = options_.doc_stride.value_or(std::min(window / 2, kLongestStride));
  return tokenizer_.encode_windows(text, *pair, stride, window);
}

std::vector<Prediction> Pipeline::predict(const std::vector<std::string>& texts,
                                          const std::vector<std::string>& pairs, size_t batch_size,
                                          size_t concurrent_batches) const {
  if (batch_size == 0) throw InvalidInput("batch_size must be at least 1");
  if (!pairs.empty() && pairs.size() != texts.size()) {
    throw InvalidInput("got " + std::to_string(texts.size()) + " texts but " +
                       std::to_string(pairs.size()) + " text pairs");
  }
  std::vector<std::vector<Encoding>> inputs;
  inputs.reserve(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    inputs.push_back(pairs.empty() ? encode(texts[i]) : encode(texts[i], pairs[i]));
  }
  return predict_encodings(std::move(inputs), {texts.begin(), texts.end()},
                           {pairs.begin(), pairs.end()}, batch_size, concurrent_batches);
}

std::vector<Prediction> Pipeline::predict_encodings(std::vector<std::vector<Encoding>> inputs,
                                                    const std::vector<std::string_view>& texts,
                                                    const std::vector<std::string_view>& pairs,
                                                    size_t batch_size,
                                                    size_t concurrent_batches) const {
  if (batch_size == 0) throw InvalidInput("batch_size must be at least 1");
  if (concurrent_batches == 0 || concurrent_batches > kMaxConcurrentBatches) {
    throw InvalidInput("concurrent_batches must be between 1 and " +
                       std::to_string(kMaxConcurrentBatches) + ", not " +
                       std::to_string(concurrent_batches));
  }
  // Each encoding runs on its own; `owner` remembers which input it belongs to.
  std::vector<Encoding> encodings;
  std::vector<size_t> owner;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].empty()) throw InvalidInput("input " + std::to_string(i) + " has no encoding");
    if (inputs[i].size() > 1 && runner_.manifest().task != "question-answering") {
      throw InvalidInput("input " + std::to_string(i) + " has " + std::to_string(inputs[i].size()) +
                         " encodings; only question-answering inputs come as windows");
    }
    for (Encoding& encoding : inputs[i]) {
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
    tokenizer_.pad(batch, padded_length(longest));
    std::vector<Prediction> batch_answers = predict_encoded(batch, batch_texts, batch_pairs);
    for (size_t k = start; k < end; ++k) answers[order[k]] = std::move(batch_answers[k - start]);
  };
  run_batches(batch_count, concurrent_batches, run_batch);

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

}  // namespace tsrunner
