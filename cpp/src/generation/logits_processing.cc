#include "logits_processing.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <unordered_set>

namespace tsrunner::detail {
namespace {

constexpr float kRemoved = -std::numeric_limits<float>::infinity();

// softmax in double (the filters compare cumulative mass against a threshold).
std::vector<double> softmax(const std::vector<float>& scores) {
  const float top = *std::max_element(scores.begin(), scores.end());
  std::vector<double> probabilities(scores.size());
  double sum = 0;
  for (size_t i = 0; i < scores.size(); ++i) {
    probabilities[i] = scores[i] == kRemoved ? 0.0 : std::exp(double(scores[i]) - double(top));
    sum += probabilities[i];
  }
  for (double& p : probabilities) p /= sum;
  return probabilities;
}

void repetition_penalty(std::vector<float>& scores, const std::vector<int64_t>& tokens,
                        double penalty) {
  std::unordered_set<int64_t> seen;
  const auto vocab = static_cast<int64_t>(scores.size());
  for (const int64_t token : tokens) {
    if (token < 0 || token >= vocab || !seen.insert(token).second) continue;
    float& score = scores[static_cast<size_t>(token)];
    score = score < 0 ? static_cast<float>(score * penalty) : static_cast<float>(score / penalty);
  }
}

void no_repeat_ngram(std::vector<float>& scores, const std::vector<int64_t>& tokens, int64_t n) {
  const auto length = static_cast<int64_t>(tokens.size());
  if (length + 1 < n) return;
  const auto vocab = static_cast<int64_t>(scores.size());
  // Every earlier n-gram whose first n-1 tokens are the last n-1 bans its last token.
  for (int64_t start = 0; start + n <= length; ++start) {
    if (std::equal(tokens.begin() + start, tokens.begin() + start + n - 1,
                   tokens.end() - (n - 1))) {
      const int64_t banned = tokens[static_cast<size_t>(start + n - 1)];
      if (banned >= 0 && banned < vocab) scores[static_cast<size_t>(banned)] = kRemoved;
    }
  }
}

void top_k(std::vector<float>& scores, int64_t k) {
  if (k <= 0 || k >= static_cast<int64_t>(scores.size())) return;
  std::vector<float> sorted = scores;
  std::nth_element(sorted.begin(), sorted.begin() + (k - 1), sorted.end(), std::greater<>());
  const float threshold = sorted[static_cast<size_t>(k - 1)];
  for (float& score : scores) {
    if (score < threshold) score = kRemoved;  // ties with the k-th stay, as in HF
  }
}

void top_p(std::vector<float>& scores, double p) {
  if (p >= 1.0) return;
  const std::vector<double> probabilities = softmax(scores);
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  // Ascending, as HF: tokens whose cumulative mass (from the least likely) is <= 1 - p go;
  // the most likely token always stays.
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  double cumulative = 0;
  for (size_t i = 0; i + 1 < order.size(); ++i) {
    cumulative += probabilities[order[i]];
    if (cumulative <= 1.0 - p) scores[order[i]] = kRemoved;
  }
}

void min_p(std::vector<float>& scores, double fraction) {
  if (fraction <= 0) return;
  const std::vector<double> probabilities = softmax(scores);
  const double top = *std::max_element(probabilities.begin(), probabilities.end());
  const size_t best = static_cast<size_t>(
      std::max_element(probabilities.begin(), probabilities.end()) - probabilities.begin());
  for (size_t i = 0; i < scores.size(); ++i) {
    if (i != best && probabilities[i] < fraction * top) scores[i] = kRemoved;
  }
}

// HF's ForcedBOS/ForcedEOSTokenLogitsProcessor: every score -inf but the forced tokens' (0).
void force(std::vector<float>& scores, const std::vector<int64_t>& tokens) {
  std::vector<float> forced(scores.size(), kRemoved);
  for (const int64_t token : tokens) {
    if (token >= 0 && token < static_cast<int64_t>(scores.size())) {
      forced[static_cast<size_t>(token)] = 0;
    }
  }
  scores.swap(forced);
}

}  // namespace

void apply_processors(std::vector<float>& scores, const std::vector<int64_t>& tokens,
                      int64_t generated, const ResolvedParams& params) {
  const TokenBiases* biases = params.token_biases.get();
  if (biases != nullptr) apply_sequence_biases(scores, tokens, biases->sequence_bias);
  if (params.repetition_penalty != 1.0) {
    repetition_penalty(scores, tokens, params.repetition_penalty);
  }
  if (params.no_repeat_ngram_size > 0) no_repeat_ngram(scores, tokens, params.no_repeat_ngram_size);
  // HF's NoBadWordsLogitsProcessor never bans an EOS token alone.
  if (biases != nullptr) {
    apply_sequence_biases(scores, tokens, biases->bad_words, params.eos_token_ids);
  }
  if (generated < params.min_new_tokens) {
    for (const int64_t eos : params.eos_token_ids) {
      if (eos >= 0 && eos < static_cast<int64_t>(scores.size())) {
        scores[static_cast<size_t>(eos)] = kRemoved;
      }
    }
  }
  if (params.forced_bos_token_id && tokens.size() == 1)
    force(scores, {*params.forced_bos_token_id});
  if (!params.forced_eos_token_ids.empty() && generated == params.max_new_tokens - 1) {
    force(scores, params.forced_eos_token_ids);
  }
  if (params.remove_invalid_values) {
    // HF's InfNanRemoveLogitsProcessor: NaN to 0, infinities to the largest finite floats.
    for (float& score : scores) {
      if (std::isnan(score)) {
        score = 0;
      } else if (std::isinf(score)) {
        score =
            score > 0 ? std::numeric_limits<float>::max() : std::numeric_limits<float>::lowest();
      }
    }
  }
  if (params.exponential_decay && generated > params.exponential_decay->first) {
    // HF's ExponentialDecayLengthPenalty: a finite EOS score grows by |score| * (factor^k - 1)
    // k tokens past the start index (float32, as HF computes it).
    const auto growth = static_cast<float>(
        std::pow(params.exponential_decay->second, generated - params.exponential_decay->first) -
        1);
    for (const int64_t eos : params.eos_token_ids) {
      if (eos < 0 || eos >= static_cast<int64_t>(scores.size())) continue;
      float& score = scores[static_cast<size_t>(eos)];
      if (std::isfinite(score)) score += std::abs(score) * growth;
    }
  }
  if (biases != nullptr) {
    suppress(scores, biases->suppress_tokens);
    // HF suppresses at the first new token, or the one after a forced BOS that follows a
    // one-token start (an encoder-decoder's decoder start).
    const auto start = static_cast<int64_t>(tokens.size()) - generated;
    const int64_t begin = start == 1 && params.forced_bos_token_id ? 1 : 0;
    if (generated == begin) suppress(scores, biases->begin_suppress_tokens);
  }
}

void apply_warpers(std::vector<float>& scores, const ResolvedParams& params) {
  if (params.temperature != 1.0) {
    const auto temperature = static_cast<float>(params.temperature);
    for (float& score : scores) score /= temperature;
  }
  top_k(scores, params.top_k);
  top_p(scores, params.top_p);
  min_p(scores, params.min_p);
}

int64_t choose_token(const std::vector<float>& scores, bool sample, std::mt19937_64& rng) {
  if (!sample) {
    return static_cast<int64_t>(std::max_element(scores.begin(), scores.end()) - scores.begin());
  }
  const std::vector<double> probabilities = softmax(scores);
  // 53 random bits: the same seed draws the same number on every platform.
  const double draw = static_cast<double>(rng() >> 11) * 0x1.0p-53;
  double cumulative = 0;
  size_t last = 0;
  for (size_t i = 0; i < probabilities.size(); ++i) {
    if (probabilities[i] <= 0) continue;
    cumulative += probabilities[i];
    last = i;
    if (draw < cumulative) return static_cast<int64_t>(i);
  }
  return static_cast<int64_t>(last);  // rounding left the draw past the total
}

}  // namespace tsrunner::detail
