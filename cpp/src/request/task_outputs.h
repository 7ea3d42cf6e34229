#pragma once

// Turns one input's logits into the task's answer. Plain float arrays in, no torch: the
// pipeline copies each output row out of its tensor first. Each follows the matching
// Hugging Face pipeline's postprocessing (see docs/cpp-api.md).

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tsrunner/prediction.h"
#include "tsrunner/tokenizer.h"

namespace tsrunner::task_outputs {

// Scores of `count` logits by `score_function` (nullopt: sigmoid for a single label, softmax
// otherwise, as HF's pipeline does), labels sorted by score, best first, cut to `top_k`.
std::vector<LabelScore> classify(const float* logits, size_t count,
                                 const std::vector<std::string>& labels,
                                 std::optional<size_t> top_k,
                                 std::optional<ScoreFunction> score_function = std::nullopt);

// `logits` is [encoding.size(), vocab]: the top_k tokens for each mask token.
std::vector<MaskFill> fill_masks(const Encoding& encoding, const float* logits, size_t vocab,
                                 int64_t mask_token_id, size_t top_k, const Tokenizer& tokenizer);

// `logits` is [encoding.size(), labels]: tokens of the first text labelled by argmax and
// grouped B-/I- by type; "O" groups dropped. `text` is the first text (may be empty when the
// input came as token ids; then offsets are 0).
std::vector<Entity> group_entities(const Encoding& encoding, const float* logits,
                                   const std::vector<std::string>& labels, std::string_view text,
                                   const Tokenizer& tokenizer);

// `start_logits`/`end_logits` are [encoding.size()]: the best context span with
// end >= start and at most `max_answer_length` tokens. `context` is the text pair.
std::optional<Answer> best_answer(const Encoding& encoding, const float* start_logits,
                                  const float* end_logits, std::string_view context,
                                  size_t max_answer_length);

// Byte offset -> code point offset in UTF-8 `text`.
size_t char_offset(std::string_view text, size_t byte_offset);

}  // namespace tsrunner::task_outputs
