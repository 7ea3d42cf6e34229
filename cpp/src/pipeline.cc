#include "tsrunner/pipeline.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <numeric>

#include "intra_op_threads.h"
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

// One model output as contiguous float32 on the CPU, found by name, of rank `rank` with the
// leading sizes `leading` (the batch, then the sequence where the task reads one row per
// token): the task code reads it through raw pointers, so a model that answers another shape is
// refused rather than read past its end.
at::Tensor output_named(const TensorMap& outputs, const std::string& name, int64_t rank,
                        std::initializer_list<int64_t> leading) {
  auto it = outputs.find(name);
  if (it == outputs.end()) throw Error("the model returned no \"" + name + "\" output");
  const at::Tensor& output = it->second;
  bool expected = output.dim() == rank;
  int64_t d = 0;
  for (int64_t size : leading) expected = expected && output.size(d++) == size;
  if (!expected) {
    throw Error("the model's \"" + name + "\" output has shape " + c10::str(output.sizes()) +
                ", expected " + std::to_string(rank) + " dimensions starting " +
                c10::str(at::IntArrayRef(leading)));
  }
  return output.to(at::kFloat).cpu().contiguous();
}

std::string_view text_at(const std::vector<std::string_view>& texts, size_t i) {
  return i < texts.size() ? texts[i] : std::string_view();
}

// `texts` (the first texts or the pairs) is empty or has one entry per input.
void check_text_count(const std::vector<std::string_view>& texts, const char* name, size_t inputs) {
  if (texts.empty() || texts.size() == inputs) return;
  throw InvalidInput(std::string("got ") + std::to_string(texts.size()) + " " + name + " for " +
                     std::to_string(inputs) + " inputs (give none or one per input)");
}

// The manifest output a task reads: the one with Hugging Face's name for it when the export
// lists that name, otherwise the export's output at `position` (outputs keep the model's order).
std::string task_output(const Manifest& manifest, const std::string& hf_name, size_t position) {
  if (manifest.find_output(hf_name)) return hf_name;
  if (position >= manifest.outputs.size()) {
    throw Error("the export has no \"" + hf_name + "\" output (nor an output " +
                std::to_string(position + 1) + "); task \"" + manifest.task + "\" needs it");
  }
  return manifest.outputs[position].name;
}

// The manifest input carrying `role`, by name; "" when the export has none.
std::string input_with_role(const Manifest& manifest, std::string_view role) {
  const TensorSpec* spec = manifest.find_input_by_role(role);
  return spec ? spec->name : std::string();
}

// Of two answers to one question from different context windows: is `candidate` better?
bool better_answer(const Prediction& candidate, const Prediction& current) {
  if (!candidate.answer) return false;
  return !current.answer || candidate.answer->score > current.answer->score;
}

}  // namespace

Pipeline::Pipeline(const Runner& runner, Tokenizer tokenizer, TaskOptions options,
                   std::shared_ptr<ThreadPool> pool)
    : Pipeline(runner, std::make_shared<const Tokenizer>(std::move(tokenizer)), options,
               std::move(pool)) {}

Pipeline::Pipeline(const Runner& runner, TaskOptions options, std::shared_ptr<ThreadPool> pool)
    // Borrowed, not owned: the runner outlives the pipeline (an empty owner, so no deleter).
    : Pipeline(runner,
               std::shared_ptr<const Tokenizer>(std::shared_ptr<void>(), &runner.tokenizer()),
               options, std::move(pool)) {}

Pipeline::Pipeline(const Runner& runner, std::shared_ptr<const Tokenizer> tokenizer,
                   TaskOptions options, std::shared_ptr<ThreadPool> pool)
    : runner_(runner),
      tokenizer_(std::move(tokenizer)),
      pool_(pool ? std::move(pool) : std::make_shared<ThreadPool>()) {
  const Manifest& manifest = runner_.manifest();
  if (manifest.plain_module) {
    throw InvalidInput(
        "a plain TorchScript module (no tsrunner manifest) has no task: it takes token ids "
        "(Runner.run, tsrun --ids --raw); `tsrunner adopt MODULE.pt --model MODEL_DIR -o "
        "model.pt` makes an archive that takes text");
  }
  switch (manifest.task_kind) {
    case Task::kFeatureExtraction:
      embedding_from_model_ = manifest.find_output("sentence_embedding") != nullptr;
      // Otherwise the token vectors, pooled here: the first output (last_hidden_state).
      task_outputs_ = {embedding_from_model_ ? "sentence_embedding"
                                             : manifest.outputs.front().name};
      break;
    case Task::kTextClassification:
      task_outputs_ = {task_output(manifest, "logits", 0)};
      break;
    case Task::kFillMask:
      if (!manifest.mask_token_id)
        throw Error("the manifest has no mask_token_id; fill-mask needs it");
      task_outputs_ = {task_output(manifest, "logits", 0)};
      break;
    case Task::kTokenClassification:
      if (manifest.labels.empty()) {
        throw Error("the manifest has no labels; token-classification needs them");
      }
      task_outputs_ = {task_output(manifest, "logits", 0)};
      break;
    case Task::kQuestionAnswering:
      task_outputs_ = {task_output(manifest, "start_logits", 0),
                       task_output(manifest, "end_logits", 1)};
      break;
    default:  // multiple-choice, causal-lm, text2text, image-classification, unknown tasks
      // Asking an export for what its task cannot give is a usage error (tsrun exit 2).
      throw InvalidInput("task-aware output for task \"" + manifest.task +
                         "\" is not implemented yet; use raw outputs (tsrun --raw, Runner.run)");
  }
  token_ids_input_ = input_with_role(manifest, "token_ids");
  attention_mask_input_ = input_with_role(manifest, "attention_mask");
  token_type_ids_input_ = input_with_role(manifest, "token_type_ids");
  if (token_ids_input_.empty()) throw Error("the export has no input with role \"token_ids\"");
  for (const TensorSpec& spec : manifest.inputs) {
    const bool from_text = spec.name == token_ids_input_ || spec.name == attention_mask_input_ ||
                           spec.name == token_type_ids_input_;
    if (!from_text && spec.default_fill.empty()) {
      throw Error("input \"" + spec.name + "\"" +
                  (spec.role.empty() ? std::string() : " (role " + spec.role + ")") +
                  " cannot be made from text and has no default");
    }
  }
  defaults_ = resolve(options);
  pooling_mode_ = manifest.pooling ? manifest.pooling->mode : "mean";
  normalize_ = manifest.pooling && manifest.pooling->normalize;
  if (embedding_from_model_ && manifest.sentence_embedding) {
    for (const std::string& module : manifest.sentence_embedding->modules) {
      normalized_in_graph_ = normalized_in_graph_ || module == "Normalize";
    }
  }
  if (!embedding_from_model_ && manifest.task_kind == Task::kFeatureExtraction &&
      pooling_mode_ != "mean" && pooling_mode_ != "cls") {
    throw Error("pooling mode \"" + pooling_mode_ + "\" is not supported (mean, cls)");
  }
}

Pipeline::CallOptions Pipeline::resolve(const TaskOptions& options) const {
  if (options.max_answer_length == 0) throw InvalidInput("max_answer_length must be at least 1");
  if (options.score_function && *options.score_function != "softmax" &&
      *options.score_function != "sigmoid" && *options.score_function != "none") {
    throw InvalidInput("score_function must be \"softmax\", \"sigmoid\" or \"none\", not \"" +
                       *options.score_function + "\"");
  }
  const Manifest& manifest = runner_.manifest();
  if (options.normalize && manifest.task_kind != Task::kFeatureExtraction) {
    throw InvalidInput("normalize applies to feature-extraction exports only, not " +
                       manifest.task);
  }
  if (options.normalize == false && normalized_in_graph_) {
    throw InvalidInput(
        "normalize=false: this export normalises inside its graph (the sentence-transformers "
        "Normalize module), so the vector before it is not an output; export the model without "
        "that module for unnormalised embeddings");
  }
  if (manifest.sentence_embedding && manifest.task_kind == Task::kFeatureExtraction) {
    return {options, manifest.sentence_embedding->prompt(options.prompt_name.value_or(""))};
  }
  if (options.prompt_name) {
    throw InvalidInput("prompt name \"" + *options.prompt_name +
                       "\" given, but this export has no prompts (only sentence-transformers "
                       "models exported by tsrunner 0.1+ with schema 2 have them)");
  }
  return {options, {}};
}

void Pipeline::check_not_moved_from() const {
  if (!tokenizer_ || !pool_) throw Error("tsrunner::Pipeline used after move");
}

const Tokenizer& Pipeline::tokenizer() const {
  check_not_moved_from();
  return *tokenizer_;
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
  check_not_moved_from();
  return predict_encoded(batch, texts, pairs, defaults_);
}

std::vector<Prediction> Pipeline::predict_encoded(const std::vector<Encoding>& batch,
                                                  const std::vector<std::string_view>& texts,
                                                  const std::vector<std::string_view>& pairs,
                                                  const TaskOptions& options) const {
  check_not_moved_from();
  return predict_encoded(batch, texts, pairs, resolve(options));
}

std::vector<Prediction> Pipeline::predict_encoded(const std::vector<Encoding>& batch,
                                                  const std::vector<std::string_view>& texts,
                                                  const std::vector<std::string_view>& pairs,
                                                  const CallOptions& call) const {
  const TaskOptions& options = call.task;
  if (batch.empty()) return {};
  check_text_count(texts, "texts", batch.size());
  check_text_count(pairs, "pairs", batch.size());
  for (size_t i = 0; i < batch.size(); ++i) batch[i].validate("encoding " + std::to_string(i));
  // Pooling and the task's tensor math take the runner's thread count too, so an answer does
  // not depend on which thread (or front end) asked.
  const detail::ScopedIntraOpThreads threads(runner_.options().threads);
  const Manifest& manifest = runner_.manifest();
  const at::Tensor mask = stack_field(batch, &Encoding::attention_mask);
  TensorMap inputs{{token_ids_input_, stack_field(batch, &Encoding::ids)}};
  if (!attention_mask_input_.empty()) inputs.emplace(attention_mask_input_, mask);
  if (!token_type_ids_input_.empty()) {
    inputs.emplace(token_type_ids_input_, stack_field(batch, &Encoding::type_ids));
  }
  const TensorMap outputs = runner_.run(inputs);
  const auto rows = static_cast<int64_t>(batch.size());
  const auto columns = static_cast<int64_t>(batch.front().size());
  std::vector<Prediction> predictions(batch.size());
  for (Prediction& prediction : predictions) prediction.task = manifest.task_kind;
  switch (manifest.task_kind) {
    case Task::kFeatureExtraction: {
      at::Tensor pooled = embedding_from_model_
                              ? output_named(outputs, task_outputs_[0], 2, {rows})
                              : output_named(outputs, task_outputs_[0], 3, {rows, columns});
      if (!embedding_from_model_) {  // token vectors [batch, sequence, hidden]
        if (pooling_mode_ == "cls") {
          pooled = pooled.select(1, 0);
        } else {  // mean over real tokens, as sentence-transformers computes it
          const at::Tensor weights = mask.unsqueeze(-1).to(pooled.dtype());
          pooled = (pooled * weights).sum(1) / weights.sum(1).clamp_min(1e-9);
        }
      }
      // Normalised here unless the graph did it: as the export says (its pooling), or as the
      // call asks (a call cannot undo the graph's: resolve() refuses that).
      const bool by_export = normalized_in_graph_ || (!embedding_from_model_ && normalize_);
      if (options.normalize.value_or(by_export) && !normalized_in_graph_) {
        pooled = pooled / pooled.norm(2, {1}, true).clamp_min(1e-12);
      }
      pooled = pooled.contiguous();
      const int64_t width = pooled.size(1);
      const float* data = pooled.data_ptr<float>();
      for (size_t i = 0; i < batch.size(); ++i) {
        predictions[i].embedding.assign(data + i * width, data + (i + 1) * width);
      }
      break;
    }
    case Task::kTextClassification: {
      const at::Tensor logits = output_named(outputs, task_outputs_[0], 2, {rows});
      const auto count = static_cast<size_t>(logits.size(1));
      for (size_t i = 0; i < batch.size(); ++i) {
        predictions[i].labels = task_outputs::classify(
            logits.data_ptr<float>() + i * count, count, manifest.labels, options.top_k,
            options.score_function.value_or(manifest.score_function));
      }
      break;
    }
    case Task::kFillMask: {
      // [batch, sequence, vocab]
      const at::Tensor logits = output_named(outputs, task_outputs_[0], 3, {rows, columns});
      const auto row = static_cast<size_t>(logits.size(1) * logits.size(2));
      for (size_t i = 0; i < batch.size(); ++i) {
        predictions[i].masks = task_outputs::fill_masks(
            batch[i], logits.data_ptr<float>() + i * row, static_cast<size_t>(logits.size(2)),
            *manifest.mask_token_id, options.top_k.value_or(5), *tokenizer_);
      }
      break;
    }
    case Task::kTokenClassification: {
      // [batch, sequence, labels]
      const at::Tensor logits = output_named(outputs, task_outputs_[0], 3, {rows, columns});
      if (static_cast<size_t>(logits.size(2)) != manifest.labels.size()) {
        throw Error("the model scores " + std::to_string(logits.size(2)) + " labels but the " +
                    "manifest names " + std::to_string(manifest.labels.size()));
      }
      const auto row = static_cast<size_t>(logits.size(1) * logits.size(2));
      for (size_t i = 0; i < batch.size(); ++i) {
        predictions[i].entities =
            task_outputs::group_entities(batch[i], logits.data_ptr<float>() + i * row,
                                         manifest.labels, text_at(texts, i), *tokenizer_);
      }
      break;
    }
    case Task::kQuestionAnswering: {
      const at::Tensor starts = output_named(outputs, task_outputs_[0], 2, {rows, columns});
      const at::Tensor ends = output_named(outputs, task_outputs_[1], 2, {rows, columns});
      const auto row = static_cast<size_t>(starts.size(1));
      for (size_t i = 0; i < batch.size(); ++i) {
        predictions[i].answer = task_outputs::best_answer(
            batch[i], starts.data_ptr<float>() + i * row, ends.data_ptr<float>() + i * row,
            text_at(pairs, i), options.max_answer_length);
      }
      break;
    }
    default:
      break;  // refused by the constructor
  }
  return predictions;
}

std::vector<Encoding> Pipeline::encode(std::string_view text,
                                       std::optional<std::string_view> pair) const {
  check_not_moved_from();
  return encode(text, pair, defaults_);
}

std::vector<Encoding> Pipeline::encode(std::string_view text, std::optional<std::string_view> pair,
                                       const TaskOptions& options) const {
  check_not_moved_from();
  return encode(text, pair, resolve(options));
}

std::vector<Encoding> Pipeline::encode(std::string_view text, std::optional<std::string_view> pair,
                                       const CallOptions& call) const {
  if (runner_.manifest().task_kind != Task::kQuestionAnswering || !pair) {
    // sentence-transformers prepends the prompt to the text itself
    Encoding encoding = call.prompt.empty()
                            ? tokenizer_->encode(text, pair)
                            : tokenizer_->encode(call.prompt + std::string(text), pair);
    if (encoding.truncated && call.task.truncate == false) {
      throw InvalidInput(std::string(pair ? "the text pair" : "the text") +
                         " is longer than the model's " +
                         std::to_string(tokenizer_->max_length().value_or(encoding.size())) +
                         " tokens (truncate=false)");
    }
    return {std::move(encoding)};
  }
  // Transformers' question-answering pipeline: windows of min(max length, 384) tokens, and a
  // doc_stride of min(that / 2, 128) unless one is given.
  constexpr size_t kLongestWindow = 384, kLongestStride = 128;
  const int64_t max_length = runner_.manifest().max_length;
  if (max_length <= 0) return {tokenizer_->encode(text, pair)};  // the export never truncates
  const size_t window = std::min<size_t>(static_cast<size_t>(max_length), kLongestWindow);
  const size_t stride = call.task.doc_stride.value_or(std::min(window / 2, kLongestStride));
  return tokenizer_->encode_windows(text, *pair, stride, window);
}

std::vector<Prediction> Pipeline::predict(Texts texts, Texts pairs, size_t batch_size,
                                          size_t concurrent_batches) const {
  check_not_moved_from();
  return predict(texts, pairs, batch_size, concurrent_batches, defaults_);
}

std::vector<Prediction> Pipeline::predict(Texts texts, Texts pairs, size_t batch_size,
                                          size_t concurrent_batches,
                                          const TaskOptions& options) const {
  check_not_moved_from();
  return predict(texts, pairs, batch_size, concurrent_batches, resolve(options));
}

std::vector<Prediction> Pipeline::predict(Texts texts, Texts pairs, size_t batch_size,
                                          size_t concurrent_batches,
                                          const CallOptions& call) const {
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
      inputs.push_back(pairs.empty() ? encode(texts[i], std::nullopt, call)
                                     : encode(texts[i], pairs[i], call));
    } catch (const InvalidInput& error) {
      throw InvalidInput("text " + std::to_string(i) + ": " + error.what());
    }
  }
  return predict_encodings(std::move(inputs), text_views, pair_views, batch_size,
                           concurrent_batches, call);
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
  check_not_moved_from();
  return predict_encodings(std::move(inputs), texts, pairs, batch_size, concurrent_batches,
                           defaults_);
}

std::vector<Prediction> Pipeline::predict_encodings(std::vector<std::vector<Encoding>> inputs,
                                                    const std::vector<std::string_view>& texts,
                                                    const std::vector<std::string_view>& pairs,
                                                    size_t batch_size, size_t concurrent_batches,
                                                    const TaskOptions& options) const {
  check_not_moved_from();
  return predict_encodings(std::move(inputs), texts, pairs, batch_size, concurrent_batches,
                           resolve(options));
}

std::vector<Prediction> Pipeline::predict_encodings(std::vector<std::vector<Encoding>> inputs,
                                                    const std::vector<std::string_view>& texts,
                                                    const std::vector<std::string_view>& pairs,
                                                    size_t batch_size, size_t concurrent_batches,
                                                    const CallOptions& call) const {
  if (batch_size == 0) throw InvalidInput("batch_size must be at least 1");
  if (concurrent_batches == 0 || concurrent_batches > kMaxConcurrentBatches) {
    throw InvalidInput("concurrent_batches must be between 1 and " +
                       std::to_string(kMaxConcurrentBatches) + ", not " +
                       std::to_string(concurrent_batches));
  }
  check_text_count(texts, "texts", inputs.size());
  check_text_count(pairs, "pairs", inputs.size());
  // Each encoding runs on its own; `owner` remembers which input it belongs to.
  std::vector<Encoding> encodings;
  std::vector<size_t> owner;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string input = "input " + std::to_string(i);
    if (inputs[i].empty()) throw InvalidInput(input + " has no encoding");
    if (inputs[i].size() > 1 && runner_.manifest().task_kind != Task::kQuestionAnswering) {
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
    tokenizer_->pad(batch, padded_length(longest));
    std::vector<Prediction> batch_answers = predict_encoded(batch, batch_texts, batch_pairs, call);
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

}  // namespace tsrunner
