#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "generation_spec.h"

namespace tsrunner {
class Runner;
}

namespace tsrunner::detail {

class CrossCache;
class KvCache;
struct Sequence;

// What one call of a generation export's methods gives.
struct StepOutput {
  at::Tensor logits;                // [rows, vocab], float32 on the CPU
  std::vector<at::Tensor> present;  // prefill/encode: key, value per layer, the positions added
  std::vector<at::Tensor> cross;    // encode only: key, value per layer, [rows, heads, source, dim]
};

// The first step of `joining`: a decoder's prefill of the prompts (left-padded, HF's position
// ids), or an encoder-decoder's encode of the sources (right-padded) with the decoder start.
StepOutput run_first_step(const Runner& runner, const GenerationSpec& spec,
                          const std::vector<Sequence*>& joining);

// One decode step: row i of the caches feeds `tokens[i]`; the step writes its keys/values into
// `cache` in place (every row one position longer after it). `cross` is an encoder-decoder's.
StepOutput run_decode_step(const Runner& runner, const GenerationSpec& spec,
                           const std::vector<int64_t>& tokens, KvCache& cache,
                           const CrossCache* cross);

}  // namespace tsrunner::detail
