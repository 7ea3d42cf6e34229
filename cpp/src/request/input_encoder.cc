#include "tsrunner/input_encoder.h"

#include <algorithm>
#include <utility>

#include "tsrunner/errors.h"

namespace tsrunner {
namespace {

// Ids given for the input with `role` must lie in the manifest's range for it, when it has one.
void check_range(const Manifest& manifest, Role role, const std::string& what,
                 const std::vector<int64_t>& ids) {
  const TensorSpec* spec = manifest.find_input_by_role(role);
  if (!spec || !spec->value_range) return;
  const auto [low, high] = *spec->value_range;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < low || ids[i] >= high) {
      throw InvalidInput("\"" + what + "\"[" + std::to_string(i) + "] = " + std::to_string(ids[i]) +
                         " is outside [" + std::to_string(low) + ", " + std::to_string(high) + ")");
    }
  }
}

const std::string kNoPrompt;

}  // namespace

InputEncoder::InputEncoder(const Manifest& manifest, std::shared_ptr<const Tokenizer> tokenizer,
                           std::string no_tokenizer_reason)
    : manifest_(manifest),
      tokenizer_(std::move(tokenizer)),
      no_tokenizer_reason_(std::move(no_tokenizer_reason)) {
  if (!tokenizer_ && no_tokenizer_reason_.empty()) {
    no_tokenizer_reason_ = "the export has no tokenizer";
  }
}

const Tokenizer& InputEncoder::tokenizer() const {
  if (!tokenizer_) {
    throw InvalidInput("cannot tokenize text: " + no_tokenizer_reason_ +
                       "; send token ids instead");
  }
  return *tokenizer_;
}

void InputEncoder::check(const TaskOptions& options) const { prompt(options); }

const std::string& InputEncoder::prompt(const TaskOptions& options) const {
  if (manifest_.sentence_embedding && manifest_.task_kind == Task::kFeatureExtraction) {
    return manifest_.sentence_embedding->prompt(options.prompt_name.value_or(""));
  }
  if (options.prompt_name) {
    throw InvalidInput("prompt name \"" + *options.prompt_name +
                       "\" given, but this export has no prompts (only sentence-transformers "
                       "models exported by tsrunner 0.1+ with schema 2 have them)");
  }
  return kNoPrompt;
}

std::vector<Encoding> InputEncoder::encode(std::string_view text,
                                           std::optional<std::string_view> pair,
                                           const TaskOptions& options) const {
  const Tokenizer& tokens = tokenizer();
  if (manifest_.task_kind == Task::kMultipleChoice) {
    throw InvalidInput("a multiple-choice export scores a text against its choices: give them");
  }
  if (manifest_.task_kind != Task::kQuestionAnswering || !pair) {
    // sentence-transformers prepends the prompt to the text itself
    const std::string& before = prompt(options);
    Encoding encoding = before.empty() ? tokens.encode(text, pair)
                                       : tokens.encode(before + std::string(text), pair);
    if (encoding.truncated && options.truncate == false) {
      throw InvalidInput(std::string(pair ? "the text pair" : "the text") +
                         " is longer than the model's " +
                         std::to_string(tokens.max_length().value_or(encoding.size())) +
                         " tokens (truncate=false)");
    }
    return {std::move(encoding)};
  }
  // Transformers' question-answering pipeline: windows of min(max length, 384) tokens, and a
  // doc_stride of min(that / 2, 128) unless one is given.
  constexpr size_t kLongestWindow = 384, kLongestStride = 128;
  if (manifest_.max_length <= 0) return {tokens.encode(text, pair)};  // never truncates
  const size_t window = std::min<size_t>(static_cast<size_t>(manifest_.max_length), kLongestWindow);
  const size_t stride = options.doc_stride.value_or(std::min(window / 2, kLongestStride));
  return tokens.encode_windows(text, *pair, stride, window);
}

std::vector<Encoding> InputEncoder::encode_choices(std::string_view text,
                                                   const std::vector<std::string_view>& choices,
                                                   const TaskOptions& options) const {
  if (manifest_.task_kind != Task::kMultipleChoice) {
    throw InvalidInput("choices are for multiple-choice exports; this export's task is " +
                       manifest_.task);
  }
  if (choices.size() < 2) {
    throw InvalidInput("a multiple-choice question needs two or more choices (got " +
                       std::to_string(choices.size()) + ")");
  }
  const Tokenizer& tokens = tokenizer();
  std::vector<Encoding> encodings;
  encodings.reserve(choices.size());
  for (size_t i = 0; i < choices.size(); ++i) {
    encodings.push_back(tokens.encode(text, choices[i]));
    if (encodings.back().truncated && options.truncate == false) {
      throw InvalidInput(
          "the text with choice " + std::to_string(i) + " is longer than the model's " +
          std::to_string(tokens.max_length().value_or(0)) + " tokens (truncate=false)");
    }
  }
  return encodings;
}

Encoding InputEncoder::encode_ids(std::vector<int64_t> ids, std::vector<int64_t> type_ids,
                                  const std::string& what) const {
  if (ids.empty()) throw InvalidInput("\"" + what + "\" has no tokens");
  const ShapeContract& contract = manifest_.shape_contract;
  const int64_t limit = contract.max_sequence > 0 ? contract.max_sequence : manifest_.max_length;
  if (limit > 0 && ids.size() > static_cast<size_t>(limit)) {
    throw InvalidInput("\"" + what + "\" has " + std::to_string(ids.size()) +
                       " tokens; the export takes at most " + std::to_string(limit));
  }
  check_range(manifest_, Role::kTokenIds, what, ids);
  if (!type_ids.empty()) {
    if (type_ids.size() != ids.size()) {
      throw InvalidInput("\"token_type_ids\" must be as long as \"" + what + "\"");
    }
    check_range(manifest_, Role::kTokenTypeIds, "token_type_ids", type_ids);
  }
  return Encoding::from_ids(std::move(ids), std::move(type_ids));
}

void InputEncoder::pad(std::vector<Encoding>& batch, size_t length) const {
  if (tokenizer_) return tokenizer_->pad(batch, length);
  if (length > kMaxPaddedLength) {
    throw InvalidInput("cannot pad to " + std::to_string(length) + " tokens (at most " +
                       std::to_string(kMaxPaddedLength) + ")");
  }
  const int64_t pad_id = manifest_.pad_token_id.value_or(0);
  for (Encoding& encoding : batch) {
    const size_t missing = length > encoding.size() ? length - encoding.size() : 0;
    encoding.ids.insert(encoding.ids.end(), missing, pad_id);
    encoding.type_ids.insert(encoding.type_ids.end(), missing, 0);
    encoding.attention_mask.insert(encoding.attention_mask.end(), missing, 0);
    encoding.tokens.insert(encoding.tokens.end(), missing, std::string());
    encoding.offsets.insert(encoding.offsets.end(), missing, {0, 0});
    encoding.sequence_ids.insert(encoding.sequence_ids.end(), missing, -1);
    encoding.word_ids.insert(encoding.word_ids.end(), missing, -1);
  }
}

size_t InputEncoder::padded_length(size_t longest) const {
  const ShapeContract& contract = manifest_.shape_contract;
  if (contract.kind == ShapeKind::kFixed && contract.max_sequence > 0) {
    return std::max(longest, static_cast<size_t>(contract.max_sequence));
  }
  return longest;
}

}  // namespace tsrunner
