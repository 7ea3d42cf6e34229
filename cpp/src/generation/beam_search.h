#pragma once

#include "decode_loop.h"
#include "generation_spec.h"

namespace tsrunner {
class Runner;
class Tokenizer;
}  // namespace tsrunner

namespace tsrunner::detail {

// HF generate's beam search (GenerationMixin._beam_search, greedy) for one sequence whose
// params.num_beams > 1: its beams run as one batch of their own (not inside a DecodeLoop's
// continuous batch), with HF's scores, length penalty, early stopping (true, false's heuristic,
// "never") and candidate rules, float32 as HF computes them. Leaves in `sequence` the best
// hypothesis (tokens, score, finish_reason, text; one chunk to its callback) and, with
// num_return_sequences > 1, the next best as alternatives.
void run_beam_search(const Runner& runner, const GenerationSpec& spec, const Tokenizer* tokenizer,
                     Sequence& sequence);

}  // namespace tsrunner::detail
