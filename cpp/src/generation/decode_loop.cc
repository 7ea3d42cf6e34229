#include "decode_loop.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <utility>

#include "logits_processing.h"
#include "model_step.h"
#include "tsrunner/runner.h"

namespace tsrunner::detail {

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
  result.prompt_tokens = source.empty() ? prompt_length : static_cast<int64_t>(source.size());
  result.score = score;
  result.alternatives = alternatives;
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
  const StepOutput first = run_first_step(runner_, spec_, joining);
  const at::ScalarType dtype = first.present.at(0).scalar_type();
  if (!cache_) cache_.emplace(spec_, max_batch_, columns, dtype);
  cache_->reserve_rows(static_cast<int64_t>(running_.size() + joining.size()));
  if (spec_.encoder_decoder && !cross_) {
    cross_.emplace(spec_, max_batch_, first.cross.at(0).size(2), dtype);
  }
  std::vector<Sequence*> finished;
  const int64_t vocab = first.logits.size(1);
  for (size_t row = 0; row < joining.size(); ++row) {
    Sequence& sequence = *joining[row];
    if (!advance(sequence, first.logits[static_cast<int64_t>(row)].data_ptr<float>(), vocab)) {
      finished.push_back(&sequence);
      continue;
    }
    cache_->add_row(first.present, static_cast<int64_t>(row), sequence.prompt_length);
    if (cross_) {
      cross_->add_row(first.cross, static_cast<int64_t>(row),
                      static_cast<int64_t>(sequence.source.size()));
    }
    running_.push_back(&sequence);
  }
  return finished;
}

std::vector<Sequence*> DecodeLoop::step() {
  if (running_.empty()) return {};
  KvCache& cache = *cache_;
  const auto rows = static_cast<int64_t>(running_.size());
  std::vector<int64_t> tokens;
  tokens.reserve(running_.size());
  for (const Sequence* sequence : running_) tokens.push_back(sequence->next_token);
  const StepOutput output =
      run_decode_step(runner_, spec_, tokens, cache, cross_ ? &*cross_ : nullptr);
  const int64_t vocab = output.logits.size(1);
  std::vector<bool> keep(static_cast<size_t>(rows));
  for (int64_t row = 0; row < rows; ++row) {
    keep[static_cast<size_t>(row)] =
        advance(*running_[static_cast<size_t>(row)], output.logits[row].data_ptr<float>(), vocab);
  }
  // Removed from the end, so the rows still to visit keep their places; the caches move their
  // last row into a freed one, as running_ does.
  std::vector<Sequence*> finished;
  for (int64_t row = rows - 1; row >= 0; --row) {
    if (keep[static_cast<size_t>(row)]) continue;
    finished.push_back(running_[static_cast<size_t>(row)]);
    cache.remove_row(row);
    if (cross_) cross_->remove_row(row);
    running_[static_cast<size_t>(row)] = running_.back();
    running_.pop_back();
  }
  return finished;
}

std::vector<Sequence*> DecodeLoop::abandon() {
  std::vector<Sequence*> dropped;
  dropped.swap(running_);
  cache_.reset();
  cross_.reset();
  return dropped;
}

}  // namespace tsrunner::detail
