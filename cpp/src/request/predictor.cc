#include "tsrunner/predictor.h"

#include <ATen/ATen.h>

#include <utility>

#include "intra_op_threads.h"
#include "task_outputs.h"
#include "tsrunner/errors.h"

namespace tsrunner {
namespace {

// One Encoding field of every row, rows of `per_row` encodings each: [rows, length] when
// per_row is 0 (one encoding per row), [rows, per_row, length] otherwise (multiple-choice).
at::Tensor stack_field(const std::vector<const Encoding*>& encodings, size_t per_row,
                       std::vector<int64_t> Encoding::* field) {
  const auto length = static_cast<int64_t>(encodings.front()->size());
  const auto count = static_cast<int64_t>(encodings.size());
  at::Tensor tensor = per_row == 0 ? at::empty({count, length}, at::kLong)
                                   : at::empty({count / static_cast<int64_t>(per_row),
                                                static_cast<int64_t>(per_row), length},
                                               at::kLong);
  int64_t* data = tensor.data_ptr<int64_t>();
  for (const Encoding* encoding : encodings) {
    if (static_cast<int64_t>(encoding->size()) != length) {
      throw InvalidInput("the encodings of one batch must be padded to the same length");
    }
    data = std::copy((encoding->*field).begin(), (encoding->*field).end(), data);
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
std::string input_with_role(const Manifest& manifest, Role role) {
  const TensorSpec* spec = manifest.find_input_by_role(role);
  return spec ? spec->name : std::string();
}

}  // namespace

Predictor::Predictor(const Runner& runner, std::shared_ptr<const Tokenizer> tokenizer)
    : runner_(runner), tokenizer_(std::move(tokenizer)) {
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
    case Task::kMultipleChoice:
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
    default:  // causal-lm, text2text, image-classification, unknown tasks
      // Asking an export for what its task cannot give is a usage error (tsrun exit 2).
      throw InvalidInput("task-aware output for task \"" + manifest.task +
                         "\" is not implemented yet; use raw outputs (tsrun --raw, Runner.run)");
  }
  token_ids_input_ = input_with_role(manifest, Role::kTokenIds);
  attention_mask_input_ = input_with_role(manifest, Role::kAttentionMask);
  token_type_ids_input_ = input_with_role(manifest, Role::kTokenTypeIds);
  if (token_ids_input_.empty()) throw Error("the export has no input with role \"token_ids\"");
  for (const TensorSpec& spec : manifest.inputs) {
    const bool from_text = spec.name == token_ids_input_ || spec.name == attention_mask_input_ ||
                           spec.name == token_type_ids_input_;
    if (!from_text && spec.default_fill == Fill::kRequired) {
      throw Error("input \"" + spec.name + "\"" +
                  (spec.role == Role::kNone ? std::string()
                                            : " (role " + std::string(role_name(spec.role)) + ")") +
                  " cannot be made from text and has no default");
    }
  }
  pooling_mode_ = manifest.pooling ? manifest.pooling->mode : PoolingMode::kMean;
  normalize_ = manifest.pooling && manifest.pooling->normalize;
  if (embedding_from_model_ && manifest.sentence_embedding) {
    for (const std::string& module : manifest.sentence_embedding->modules) {
      normalized_in_graph_ = normalized_in_graph_ || module == "Normalize";
    }
  }
  if (!embedding_from_model_ && manifest.task_kind == Task::kFeatureExtraction &&
      pooling_mode_ != PoolingMode::kMean && pooling_mode_ != PoolingMode::kCls) {
    throw Error("pooling mode \"" + std::string(pooling_mode_name(pooling_mode_)) +
                "\" is not supported (mean, cls)");
  }
}

void Predictor::check(const TaskOptions& options) const {
  if (options.max_answer_length == 0) throw InvalidInput("max_answer_length must be at least 1");
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
}

const Tokenizer& Predictor::tokenizer(const char* why) const {
  if (!tokenizer_) {
    throw InvalidInput(std::string(why) + " need the export's tokenizer, which it does not have");
  }
  return *tokenizer_;
}

std::vector<Prediction> Predictor::predict(const std::vector<Encoding>& batch,
                                           const std::vector<std::string_view>& texts,
                                           const std::vector<std::string_view>& pairs,
                                           const TaskOptions& options) const {
  if (batch.empty()) return {};
  const Manifest& manifest = runner_.manifest();
  if (manifest.task_kind == Task::kMultipleChoice) {
    throw InvalidInput(
        "a multiple-choice export scores each text against its choices "
        "(Predictor::predict_choices)");
  }
  check_text_count(texts, "texts", batch.size());
  check_text_count(pairs, "pairs", batch.size());
  std::vector<const Encoding*> rows;
  for (size_t i = 0; i < batch.size(); ++i) {
    batch[i].validate("encoding " + std::to_string(i));
    rows.push_back(&batch[i]);
  }
  // Pooling and the task's tensor math take the runner's thread count too, so an answer does
  // not depend on which thread (or front end) asked.
  const detail::ScopedIntraOpThreads threads(runner_.options().threads);
  const at::Tensor mask = stack_field(rows, 0, &Encoding::attention_mask);
  TensorMap inputs{{token_ids_input_, stack_field(rows, 0, &Encoding::ids)}};
  if (!attention_mask_input_.empty()) inputs.emplace(attention_mask_input_, mask);
  if (!token_type_ids_input_.empty()) {
    inputs.emplace(token_type_ids_input_, stack_field(rows, 0, &Encoding::type_ids));
  }
  const TensorMap outputs = runner_.run(inputs);
  const auto count = static_cast<int64_t>(batch.size());
  const auto columns = static_cast<int64_t>(batch.front().size());
  std::vector<Prediction> predictions(batch.size());
  for (Prediction& prediction : predictions) prediction.task = manifest.task_kind;
  switch (manifest.task_kind) {
    case Task::kFeatureExtraction: {
      at::Tensor pooled = embedding_from_model_
                              ? output_named(outputs, task_outputs_[0], 2, {count})
                              : output_named(outputs, task_outputs_[0], 3, {count, columns});
      if (!embedding_from_model_) {  // token vectors [batch, sequence, hidden]
        if (pooling_mode_ == PoolingMode::kCls) {
          pooled = pooled.select(1, 0);
        } else {  // mean over real tokens, as sentence-transformers computes it
          const at::Tensor weights = mask.unsqueeze(-1).to(pooled.dtype());
          pooled = (pooled * weights).sum(1) / weights.sum(1).clamp_min(1e-9);
        }
      }
      // Normalised here unless the graph did it: as the export says (its pooling), or as the
      // call asks (a call cannot undo the graph's: check() refuses that).
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
      const at::Tensor logits = output_named(outputs, task_outputs_[0], 2, {count});
      const auto labels = static_cast<size_t>(logits.size(1));
      for (size_t i = 0; i < batch.size(); ++i) {
        predictions[i].labels = task_outputs::classify(
            logits.data_ptr<float>() + i * labels, labels, manifest.labels, options.top_k,
            options.score_function ? options.score_function : manifest.score_function);
      }
      break;
    }
    case Task::kFillMask: {
      // [batch, sequence, vocab]
      const Tokenizer& names = tokenizer("fill-mask answers");
      const at::Tensor logits = output_named(outputs, task_outputs_[0], 3, {count, columns});
      const auto row = static_cast<size_t>(logits.size(1) * logits.size(2));
      for (size_t i = 0; i < batch.size(); ++i) {
        predictions[i].masks = task_outputs::fill_masks(
            batch[i], logits.data_ptr<float>() + i * row, static_cast<size_t>(logits.size(2)),
            *manifest.mask_token_id, options.top_k.value_or(5), names);
      }
      break;
    }
    case Task::kTokenClassification: {
      // [batch, sequence, labels]
      const Tokenizer& names = tokenizer("token-classification answers");
      const at::Tensor logits = output_named(outputs, task_outputs_[0], 3, {count, columns});
      if (static_cast<size_t>(logits.size(2)) != manifest.labels.size()) {
        throw Error("the model scores " + std::to_string(logits.size(2)) + " labels but the " +
                    "manifest names " + std::to_string(manifest.labels.size()));
      }
      const auto row = static_cast<size_t>(logits.size(1) * logits.size(2));
      for (size_t i = 0; i < batch.size(); ++i) {
        predictions[i].entities =
            task_outputs::group_entities(batch[i], logits.data_ptr<float>() + i * row,
                                         manifest.labels, text_at(texts, i), names);
      }
      break;
    }
    case Task::kQuestionAnswering: {
      const at::Tensor starts = output_named(outputs, task_outputs_[0], 2, {count, columns});
      const at::Tensor ends = output_named(outputs, task_outputs_[1], 2, {count, columns});
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

std::vector<Prediction> Predictor::predict_choices(
    const std::vector<std::vector<Encoding>>& questions, const TaskOptions& /*options*/) const {
  if (questions.empty()) return {};
  const Manifest& manifest = runner_.manifest();
  if (manifest.task_kind != Task::kMultipleChoice) {
    throw InvalidInput("choices are for multiple-choice exports; this export's task is " +
                       manifest.task);
  }
  const size_t choices = questions.front().size();
  if (choices < 2) throw InvalidInput("a multiple-choice question needs two or more choices");
  std::vector<const Encoding*> rows;
  for (size_t q = 0; q < questions.size(); ++q) {
    if (questions[q].size() != choices) {
      throw InvalidInput("the questions of one batch must have the same number of choices");
    }
    for (size_t c = 0; c < choices; ++c) {
      questions[q][c].validate("question " + std::to_string(q) + " choice " + std::to_string(c));
      rows.push_back(&questions[q][c]);
    }
  }
  const detail::ScopedIntraOpThreads threads(runner_.options().threads);
  TensorMap inputs{{token_ids_input_, stack_field(rows, choices, &Encoding::ids)}};
  if (!attention_mask_input_.empty()) {
    inputs.emplace(attention_mask_input_, stack_field(rows, choices, &Encoding::attention_mask));
  }
  if (!token_type_ids_input_.empty()) {
    inputs.emplace(token_type_ids_input_, stack_field(rows, choices, &Encoding::type_ids));
  }
  const auto count = static_cast<int64_t>(questions.size());
  // [questions, choices]: one score per choice, a softmax over each question's choices
  const at::Tensor scores =
      output_named(runner_.run(inputs), task_outputs_[0], 2, {count, static_cast<int64_t>(choices)})
          .softmax(1)
          .contiguous();
  std::vector<Prediction> predictions(questions.size());
  const float* data = scores.data_ptr<float>();
  for (size_t q = 0; q < questions.size(); ++q) {
    Prediction& prediction = predictions[q];
    prediction.task = Task::kMultipleChoice;
    for (size_t c = 0; c < choices; ++c) {
      const float score = data[q * choices + c];
      if (score > data[q * choices + prediction.best_choice]) prediction.best_choice = c;
      prediction.choices.push_back({std::string(), score});
    }
  }
  return predictions;
}

}  // namespace tsrunner
