#include "task_outputs.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace tsrunner::task_outputs {
namespace {

// Probabilities of `count` logits (in double, then reported as float).
std::vector<double> softmax(const float* logits, size_t count) {
  std::vector<double> probs(count);
  const double top = *std::max_element(logits, logits + count);
  double total = 0.0;
  for (size_t i = 0; i < count; ++i) total += probs[i] = std::exp(logits[i] - top);
  for (double& p : probs) p /= total;
  return probs;
}

std::string label_name(const std::vector<std::string>& labels, size_t index) {
  return index < labels.size() ? labels[index] : "LABEL_" + std::to_string(index);
}

// Whether token `i` continues the word of token i - 1: the encoding's word ids when it has them
// (any tokenizer), else WordPiece's "##" (encodings made from bare ids carry no words).
bool continues_word(const Encoding& encoding, size_t i) {
  if (encoding.word_ids.size() == encoding.size()) {
    return encoding.word_ids[i] >= 0 && encoding.word_ids[i] == encoding.word_ids[i - 1] &&
           encoding.sequence_ids[i] == encoding.sequence_ids[i - 1];
  }
  return encoding.tokens[i].rfind("##", 0) == 0;
}

TextSpan make_span(std::string_view text, size_t byte_start, size_t byte_end) {
  return TextSpan{char_offset(text, byte_start), char_offset(text, byte_end), byte_start, byte_end};
}

// Hugging Face's get_tag: "B-X" -> (B, X), "I-X" -> (I, X), anything else -> (I, itself).
std::pair<char, std::string> bio_tag(const std::string& label) {
  if (label.rfind("B-", 0) == 0) return {'B', label.substr(2)};
  if (label.rfind("I-", 0) == 0) return {'I', label.substr(2)};
  return {'I', label};
}

struct TokenLabel {
  std::string label;
  float score;
  std::string word;
  size_t byte_start;
  size_t byte_end;
};

}  // namespace

size_t char_offset(std::string_view text, size_t byte_offset) {
  byte_offset = std::min(byte_offset, text.size());
  size_t count = 0;
  for (size_t i = 0; i < byte_offset; ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) ++count;
  }
  return count;
}

std::vector<LabelScore> classify(const float* logits, size_t count,
                                 const std::vector<std::string>& labels,
                                 std::optional<size_t> top_k,
                                 std::optional<ScoreFunction> score_function) {
  std::vector<LabelScore> scores(count);
  if (count == 0) return scores;
  const ScoreFunction function =
      score_function.value_or(count == 1 ? ScoreFunction::kSigmoid : ScoreFunction::kSoftmax);
  if (function == ScoreFunction::kSoftmax) {
    const std::vector<double> probs = softmax(logits, count);
    for (size_t i = 0; i < count; ++i) scores[i] = {label_name(labels, i), float(probs[i])};
  } else {  // one score per label: squashed (rerankers, multi-label) or the logit itself
    const bool sigmoid = function == ScoreFunction::kSigmoid;
    for (size_t i = 0; i < count; ++i) {
      const double logit = logits[i];
      scores[i] = {label_name(labels, i), float(sigmoid ? 1.0 / (1.0 + std::exp(-logit)) : logit)};
    }
  }
  std::stable_sort(scores.begin(), scores.end(),
                   [](const LabelScore& a, const LabelScore& b) { return a.score > b.score; });
  if (top_k && *top_k < scores.size()) scores.resize(*top_k);
  return scores;
}

std::vector<MaskFill> fill_masks(const Encoding& encoding, const float* logits, size_t vocab,
                                 int64_t mask_token_id, size_t top_k, const Tokenizer& tokenizer) {
  std::vector<MaskFill> masks;
  if (vocab == 0) return masks;
  top_k = std::min(top_k, vocab);
  std::vector<size_t> order(vocab);
  for (size_t position = 0; position < encoding.size(); ++position) {
    if (encoding.ids[position] != mask_token_id || encoding.attention_mask[position] == 0) continue;
    const std::vector<double> probs = softmax(logits + position * vocab, vocab);
    std::iota(order.begin(), order.end(), size_t{0});
    std::partial_sort(order.begin(), order.begin() + top_k, order.end(), [&](size_t a, size_t b) {
      return probs[a] > probs[b] || (probs[a] == probs[b] && a < b);
    });
    MaskFill fill{position, {}};
    for (size_t k = 0; k < top_k; ++k) {
      const auto id = static_cast<int64_t>(order[k]);
      // HF's token_str: the decoded token (" the" for byte-level "Ġthe", "the" for "▁the").
      fill.candidates.push_back({id, tokenizer.decode({id}, false), float(probs[order[k]])});
    }
    masks.push_back(std::move(fill));
  }
  return masks;
}

std::vector<Entity> group_entities(const Encoding& encoding, const float* logits,
                                   const std::vector<std::string>& labels, std::string_view text,
                                   const Tokenizer& tokenizer) {
  const size_t count = labels.size();
  const std::optional<int64_t> unknown_id = tokenizer.unknown_id();
  std::vector<TokenLabel> tokens;
  for (size_t i = 0; i < encoding.size(); ++i) {
    // The first text's real tokens only: no specials, padding or pair tokens.
    if (encoding.sequence_ids[i] != 0 || encoding.attention_mask[i] == 0) continue;
    const std::vector<double> probs = softmax(logits + i * count, count);
    const auto best =
        static_cast<size_t>(std::max_element(probs.begin(), probs.end()) - probs.begin());
    auto [byte_start, byte_end] = encoding.offsets[i];
    byte_end = std::min(byte_end, text.size());
    byte_start = std::min(byte_start, byte_end);
    // HF's convert_ids_to_tokens: the vocabulary's token (encodings made from bare ids have
    // no token text).
    std::string word = tokenizer.id_to_token(encoding.ids[i]);
    if (word.empty()) word = encoding.tokens[i];
    // HF shows an unknown token as the text it stands for.
    if (unknown_id && encoding.ids[i] == *unknown_id && byte_end > byte_start) {
      word = std::string(text.substr(byte_start, byte_end - byte_start));
    }
    tokens.push_back({label_name(labels, best), float(probs[best]), word, byte_start, byte_end});
  }
  std::vector<Entity> entities;
  auto flush = [&](size_t first, size_t last) {  // tokens [first, last) form one group
    const std::string group = bio_tag(tokens[first].label).second;
    if (group == "O") return;
    double total = 0.0;
    std::vector<std::string> words;
    for (size_t k = first; k < last; ++k) {
      total += tokens[k].score;
      words.push_back(tokens[k].word);
    }
    // HF: convert_tokens_to_string, the tokenizer's decoder over the group's tokens.
    entities.push_back({group, float(total / double(last - first)), tokenizer.decode_tokens(words),
                        make_span(text, tokens[first].byte_start, tokens[last - 1].byte_end)});
  };
  size_t first = 0;
  for (size_t k = 1; k < tokens.size(); ++k) {
    const auto [bi, tag] = bio_tag(tokens[k].label);
    if (tag != bio_tag(tokens[k - 1].label).second || bi == 'B') {
      flush(first, k);
      first = k;
    }
  }
  if (!tokens.empty()) flush(first, tokens.size());
  return entities;
}

std::optional<Answer> best_answer(const Encoding& encoding, const float* start_logits,
                                  const float* end_logits, std::string_view context,
                                  size_t max_answer_length) {
  const size_t length = encoding.size();
  // Only context tokens (and, as in HF, the [CLS] at 0) take part in the softmax.
  std::vector<float> start(length, -10000.0f), end(length, -10000.0f);
  std::vector<bool> in_context(length, false);
  for (size_t i = 0; i < length; ++i) {
    if (encoding.attention_mask[i] == 0) continue;
    in_context[i] = encoding.sequence_ids[i] == 1;
    if (in_context[i] || i == 0) {
      start[i] = start_logits[i];
      end[i] = end_logits[i];
    }
  }
  const std::vector<double> p_start = softmax(start.data(), length);
  const std::vector<double> p_end = softmax(end.data(), length);
  double best = -1.0;
  size_t best_start = 0, best_end = 0;
  for (size_t s = 0; s < length; ++s) {
    if (!in_context[s]) continue;
    for (size_t e = s; e < length && e - s < max_answer_length; ++e) {
      if (!in_context[e]) continue;
      const double score = p_start[s] * p_end[e];
      if (score > best) {
        best = score;
        best_start = s;
        best_end = e;
      }
    }
  }
  if (best < 0.0) return std::nullopt;
  // Widen to whole words, as HF's align_to_words does.
  while (best_start > 0 && in_context[best_start - 1] && continues_word(encoding, best_start)) {
    --best_start;
  }
  while (best_end + 1 < length && in_context[best_end + 1] &&
         continues_word(encoding, best_end + 1)) {
    ++best_end;
  }
  const size_t byte_end = std::min(encoding.offsets[best_end].second, context.size());
  const size_t byte_start = std::min(encoding.offsets[best_start].first, byte_end);
  return Answer{std::string(context.substr(byte_start, byte_end - byte_start)), float(best),
                make_span(context, byte_start, byte_end)};
}

}  // namespace tsrunner::task_outputs
