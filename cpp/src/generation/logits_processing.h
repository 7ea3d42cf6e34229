#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "generation_spec.h"

namespace tsrunner::detail {

// Hugging Face generate's logits processors, in its order, on one sequence's next-token scores
// (float32, as HF computes them): the saved sequence_bias, repetition penalty over every token
// so far (prompt included), no-repeat n-grams, the saved bad_words_ids, EOS suppressed below
// min_new_tokens, forced BOS (first token of a sequence that starts from one token: an
// encoder-decoder's), forced EOS (the last token allowed), the saved remove_invalid_values,
// suppress_tokens and begin_suppress_tokens.
void apply_processors(std::vector<float>& scores, const std::vector<int64_t>& tokens,
                      int64_t generated, const ResolvedParams& params);

// HF's sampling warpers in its order (temperature, top-k, top-p, min-p): the scores of removed
// tokens become -inf. Applied only when sampling.
void apply_warpers(std::vector<float>& scores, const ResolvedParams& params);

// The next token: the first highest score when not sampling (torch.argmax), else a draw from
// softmax(scores) with `rng`.
int64_t choose_token(const std::vector<float>& scores, bool sample, std::mt19937_64& rng);

}  // namespace tsrunner::detail
