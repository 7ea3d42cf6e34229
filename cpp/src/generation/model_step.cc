#include "model_step.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <utility>

#include "cross_cache.h"
#include "decode_loop.h"
#include "kv_cache.h"
#include "tsrunner/errors.h"
#include "tsrunner/runner.h"

namespace tsrunner::detail {
namespace {

StepOutput split(std::vector<at::Tensor> outputs, const GenerationSpec& spec) {
  StepOutput step;
  step.logits = outputs[0].to(at::kCPU, at::kFloat).contiguous();
  const auto self_end = outputs.begin() + 1 + 2 * spec.num_layers;
  step.present.assign(outputs.begin() + 1, std::min(self_end, outputs.end()));
  if (self_end < outputs.end()) step.cross.assign(self_end, outputs.end());
  return step;
}

// Sources right-padded (as HF tokenizers pad T5 and BART), each row's decoder start token.
std::vector<at::Tensor> encode_inputs(const GenerationSpec& spec,
                                      const std::vector<Sequence*>& joining) {
  int64_t longest = 0;
  for (const Sequence* sequence : joining) {
    longest = std::max(longest, static_cast<int64_t>(sequence->source.size()));
  }
  const auto batch = static_cast<int64_t>(joining.size());
  at::Tensor ids = at::full({batch, longest}, spec.pad_token_id, at::kLong);
  at::Tensor mask = at::zeros({batch, longest}, at::kLong);
  at::Tensor start = at::empty({batch, 1}, at::kLong);
  auto id_values = ids.accessor<int64_t, 2>();
  auto mask_values = mask.accessor<int64_t, 2>();
  for (int64_t row = 0; row < batch; ++row) {
    const Sequence& sequence = *joining[static_cast<size_t>(row)];
    for (size_t i = 0; i < sequence.source.size(); ++i) {
      id_values[row][static_cast<int64_t>(i)] = sequence.source[i];
      mask_values[row][static_cast<int64_t>(i)] = 1;
    }
    start[row][0] = sequence.tokens.back();
  }
  return {ids, mask, start};
}

// Prompts left-padded, position ids counting real tokens only (HF generate's).
std::vector<at::Tensor> prefill_inputs(const GenerationSpec& spec,
                                       const std::vector<Sequence*>& joining) {
  int64_t longest = 0;
  for (const Sequence* sequence : joining) longest = std::max(longest, sequence->prompt_length);
  const auto batch = static_cast<int64_t>(joining.size());
  at::Tensor ids = at::full({batch, longest}, spec.pad_token_id, at::kLong);
  at::Tensor mask = at::zeros({batch, longest}, at::kLong);
  at::Tensor positions = at::zeros({batch, longest}, at::kLong);
  auto id_values = ids.accessor<int64_t, 2>();
  auto mask_values = mask.accessor<int64_t, 2>();
  auto position_values = positions.accessor<int64_t, 2>();
  for (int64_t row = 0; row < batch; ++row) {
    const Sequence& sequence = *joining[static_cast<size_t>(row)];
    const int64_t pad = longest - sequence.prompt_length;
    for (int64_t i = 0; i < sequence.prompt_length; ++i) {
      id_values[row][pad + i] = sequence.tokens[static_cast<size_t>(i)];
      mask_values[row][pad + i] = 1;
      position_values[row][pad + i] = i;
    }
  }
  return {ids, mask, positions};
}

}  // namespace

StepOutput run_first_step(const Runner& runner, const GenerationSpec& spec,
                          const std::vector<Sequence*>& joining) {
  std::vector<at::Tensor> inputs =
      spec.encoder_decoder ? encode_inputs(spec, joining) : prefill_inputs(spec, joining);
  return split(runner.run_method(spec.prefill_method, std::move(inputs)), spec);
}

StepOutput run_decode_step(const Runner& runner, const GenerationSpec& spec,
                           const std::vector<int64_t>& tokens, KvCache& cache,
                           const CrossCache* cross) {
  const auto rows = static_cast<int64_t>(tokens.size());
  at::Tensor ids = at::empty({rows, 1}, at::kLong);
  at::Tensor positions = at::empty({rows, 1}, at::kLong);
  auto id_values = ids.accessor<int64_t, 2>();
  auto position_values = positions.accessor<int64_t, 2>();
  for (int64_t row = 0; row < rows; ++row) {
    id_values[row][0] = tokens[static_cast<size_t>(row)];
    position_values[row][0] = cache.length(row);  // real tokens before this one
  }
  std::vector<at::Tensor> inputs = {ids, cache.attention_mask(), positions};
  if (cross != nullptr) inputs.push_back(cross->attention_mask());
  for (at::Tensor& window : cache.step_window()) inputs.push_back(std::move(window));
  if (cross != nullptr) {
    for (at::Tensor& past : cross->window()) inputs.push_back(std::move(past));
  }
  std::vector<at::Tensor> outputs = runner.run_method(spec.decode_method, std::move(inputs));
  if (outputs.size() != 1) {
    throw Error("the export's decode method returned " + std::to_string(outputs.size()) +
                " tensors, not the logits alone: re-export the model with this tsrunner");
  }
  cache.commit_step();
  return split(std::move(outputs), spec);
}

}  // namespace tsrunner::detail
