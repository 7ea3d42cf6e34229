#include "decode_loop.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <utility>

#include "logits_processing.h"
#include "tsrunner/runner.h"

namespace tsrunner::detail {
namespace {

// A batch's logits as float32 rows on the CPU.
at::Tensor cpu_rows(const at::Tensor& logits) {
  return logits.to(at::kCPU, at::kFloat).contiguous();
}

}  // namespace

Sequence::Sequence(size_t index, std::vector<int64_t> prompt, ResolvedParams resolved,
                   const Tokenizer* tokenizer, ChunkCallback callback)
    : index(index),
      tokens(std::move(prompt)),
      prompt_length(static_cast<int64_t>(tokens.size())),
      params(std::move(resolved)),
      rng(params.seed),
      text(tokenizer, params.stop),
      on_chunk(std::move(callback)) {}

GenerationResult Sequence::result() const {
  GenerationResult result;
  result.token_ids.assign(tokens.begin() + prompt_length, tokens.end());
  result.text = text.text();
  result.finish_reason = finish_reason;
  result.prompt_tokens = prompt_length;
  return result;
}

DecodeLoop::DecodeLoop(const Runner& runner, const GenerationSpec& spec, int64_t max_batch)
    : runner_(runner), spec_(spec), max_batch_(max_batch) {}

int64_t DecodeLoop::free_rows() const { return max_batch_ - static_cast<int64_t>(running_.size()); }

// Chooses the token after `row` (one sequence's logits), records it and tells the callback.
// Returns false when the sequence has finished (or was cancelled).
bool DecodeLoop::advance(Sequence& sequence, const float* row, int64_t vocab) const {
  std::vector<float> scores(row, row + vocab);
  const ResolvedParams& params = sequence.params;
  apply_processors(scores, sequence.tokens, sequence.generated(), params);
  if (params.do_sample) apply_warpers(scores, params);
  const int64_t token = choose_token(scores, params.do_sample, sequence.rng);

  GenerationChunk chunk;
  chunk.index = sequence.index;
  chunk.token_id = token;
  const bool eos = std::find(params.eos_token_ids.begin(), params.eos_token_ids.end(), token) !=
                   params.eos_token_ids.end();
  if (eos) {
    sequence.finish_reason = "stop";
  } else {
    sequence.tokens.push_back(token);
    sequence.next_token = token;
    chunk.text = sequence.text.push(token);
    if (sequence.text.stopped()) {
      sequence.finish_reason = "stop";
    } else if (sequence.generated() >= params.max_new_tokens ||
               static_cast<int64_t>(sequence.tokens.size()) >= spec_.max_context) {
      sequence.finish_reason = "length";
    }
  }
  if (!sequence.finish_reason.empty()) {
    chunk.text += sequence.text.finish();
    chunk.finished = true;
    chunk.finish_reason = sequence.finish_reason;
  }
  if (sequence.on_chunk && !sequence.on_chunk(chunk) && sequence.finish_reason.empty()) {
    sequence.finish_reason = "cancelled";
  }
  return sequence.finish_reason.empty();
}

std::vector<Sequence*> DecodeLoop::admit(const std::vector<Sequence*>& joining, int64_t columns) {
  if (joining.empty()) return {};
  int64_t longest = 0;
  for (const Sequence* sequence : joining) longest = std::max(longest, sequence->prompt_length);
  const auto batch = static_cast<int64_t>(joining.size());
  at::Tensor ids = at::full({batch, longest}, spec_.pad_token_id, at::kLong);
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
      position_values[row][pad + i] = i;  // HF: real tokens before this one
    }
  }
  std::vector<at::Tensor> outputs =
      runner_.run_method(spec_.prefill_method, {ids, mask, positions});
  const at::Tensor logits = cpu_rows(outputs[0]);
  const std::vector<at::Tensor> present(outputs.begin() + 1, outputs.end());
  if (!cache_) cache_.emplace(spec_, max_batch_, columns, present.at(0).scalar_type());
  std::vector<Sequence*> finished;
  const int64_t vocab = logits.size(1);
  for (int64_t row = 0; row < batch; ++row) {
    Sequence& sequence = *joining[static_cast<size_t>(row)];
    if (!advance(sequence, logits[row].data_ptr<float>(), vocab)) {
      finished.push_back(&sequence);
      continue;
    }
    cache_->add_row(present, row, sequence.prompt_length);
    running_.push_back(&sequence);
  }
  return finished;
}

std::vector<Sequence*> DecodeLoop::step() {
  if (running_.empty()) return {};
  KvCache& cache = *cache_;
  const auto rows = static_cast<int64_t>(running_.size());
  at::Tensor ids = at::empty({rows, 1}, at::kLong);
  at::Tensor positions = at::empty({rows, 1}, at::kLong);
  auto id_values = ids.accessor<int64_t, 2>();
  auto position_values = positions.accessor<int64_t, 2>();
  for (int64_t row = 0; row < rows; ++row) {
    id_values[row][0] = running_[static_cast<size_t>(row)]->next_token;
    position_values[row][0] = cache.length(row);  // real tokens before this one
  }
  std::vector<at::Tensor> inputs = {ids, cache.attention_mask(), positions};
  for (at::Tensor& past : cache.window()) inputs.push_back(std::move(past));
  std::vector<at::Tensor> outputs = runner_.run_method(spec_.decode_method, std::move(inputs));
  const at::Tensor logits = cpu_rows(outputs[0]);
  cache.append(std::vector<at::Tensor>(outputs.begin() + 1, outputs.end()));
  const int64_t vocab = logits.size(1);
  std::vector<bool> keep(static_cast<size_t>(rows));
  for (int64_t row = 0; row < rows; ++row) {
    keep[static_cast<size_t>(row)] =
        advance(*running_[static_cast<size_t>(row)], logits[row].data_ptr<float>(), vocab);
  }
  // Removed from the end, so the rows still to visit keep their places; the cache moves its
  // last row into a freed one, as running_ does.
  std::vector<Sequence*> finished;
  for (int64_t row = rows - 1; row >= 0; --row) {
    if (keep[static_cast<size_t>(row)]) continue;
    finished.push_back(running_[static_cast<size_t>(row)]);
    cache.remove_row(row);
    running_[static_cast<size_t>(row)] = running_.back();
    running_.pop_back();
  }
  return finished;
}

std::vector<Sequence*> DecodeLoop::abandon() {
  std::vector<Sequence*> dropped;
  dropped.swap(running_);
  cache_.reset();
  return dropped;
}

}  // namespace tsrunner::detail
