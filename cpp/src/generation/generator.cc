#include "tsrunner/generator.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <deque>
#include <optional>
#include <random>
#include <utility>

#include "generation/generation_spec.h"
#include "generation/kv_cache.h"
#include "generation/logits_processing.h"
#include "generation/text_stream.h"
#include "tsrunner/errors.h"
#include "tsrunner/runner.h"
#include "tsrunner/tokenizer.h"

namespace tsrunner {
namespace {

using detail::GenerationSpec;
using detail::KvCache;
using detail::ResolvedParams;
using detail::TextStream;

// One prompt's generation state.
struct Sequence {
  size_t index = 0;
  std::vector<int64_t> tokens;  // prompt then generated
  int64_t prompt_length = 0;
  ResolvedParams params;
  std::mt19937_64 rng;
  TextStream text;
  int64_t next_token = -1;  // chosen, not yet fed to the model
  std::string finish_reason;

  Sequence(size_t index, std::vector<int64_t> prompt, ResolvedParams resolved,
           const Tokenizer* tokenizer)
      : index(index),
        tokens(std::move(prompt)),
        prompt_length(static_cast<int64_t>(tokens.size())),
        params(std::move(resolved)),
        rng(params.seed),
        text(tokenizer, params.stop) {}

  int64_t generated() const { return static_cast<int64_t>(tokens.size()) - prompt_length; }
};

// A batch's logits as float32 rows on the CPU.
at::Tensor cpu_rows(const at::Tensor& logits) {
  return logits.to(at::kCPU, at::kFloat).contiguous();
}

}  // namespace

struct Generator::Impl {
  const Runner* runner;
  GeneratorOptions options;
  GenerationSpec spec;
  const Tokenizer* tokenizer = nullptr;
  at::ScalarType cache_dtype = at::kFloat;

  // The request's parameters, resolved; InvalidInput naming `which` prompt when it cannot run.
  ResolvedParams resolve(const std::vector<int64_t>& prompt, const GenerationParams& params,
                         const std::string& which) const {
    const auto length = static_cast<int64_t>(prompt.size());
    if (length == 0) throw InvalidInput(which + " is empty (no tokens)");
    if (length >= spec.max_context) {
      throw InvalidInput(which + " has " + std::to_string(length) +
                         " tokens; this model's context takes at most " +
                         std::to_string(spec.max_context - 1) + " with one new token");
    }
    const int64_t vocab = runner->manifest().vocab_size.value_or(INT64_MAX);
    for (const int64_t id : prompt) {
      if (id < 0 || id >= vocab) {
        throw InvalidInput(which + " has token id " + std::to_string(id) +
                           " outside the vocabulary [0, " + std::to_string(vocab) + ")");
      }
    }
    return detail::resolve_params(spec, params, length);
  }

  // Chooses the token after `scores` (one row of logits), records it and tells the callback.
  // Returns false when the sequence has finished (or was cancelled).
  bool advance(Sequence& sequence, const float* row, int64_t vocab,
               const ChunkCallback& on_chunk) const {
    std::vector<float> scores(row, row + vocab);
    const ResolvedParams& params = sequence.params;
    detail::apply_processors(scores, sequence.tokens, sequence.generated(), params);
    if (params.do_sample) detail::apply_warpers(scores, params);
    const int64_t token = detail::choose_token(scores, params.do_sample, sequence.rng);

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
                 static_cast<int64_t>(sequence.tokens.size()) >= spec.max_context) {
        sequence.finish_reason = "length";
      }
    }
    if (!sequence.finish_reason.empty()) {
      chunk.text += sequence.text.finish();
      chunk.finished = true;
      chunk.finish_reason = sequence.finish_reason;
    }
    if (on_chunk && !on_chunk(chunk) && sequence.finish_reason.empty()) {
      sequence.finish_reason = "cancelled";
    }
    return sequence.finish_reason.empty();
  }

  // Prefills `joining` (left-padded into one batch), picks each one's first token and gives the
  // ones still running a row of `cache` (created on the first call). Returns those.
  std::vector<Sequence*> prefill(const std::vector<Sequence*>& joining,
                                 std::optional<KvCache>& cache, int64_t columns,
                                 const ChunkCallback& on_chunk) const {
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
        position_values[row][pad + i] = i;  // HF: real tokens before this one
      }
    }
    std::vector<at::Tensor> outputs =
        runner->run_method(spec.prefill_method, {ids, mask, positions});
    const at::Tensor logits = cpu_rows(outputs[0]);
    const std::vector<at::Tensor> present(outputs.begin() + 1, outputs.end());
    if (!cache) {
      cache.emplace(spec, options.max_batch, columns, present.at(0).scalar_type());
    }
    std::vector<Sequence*> running;
    const int64_t vocab = logits.size(1);
    for (int64_t row = 0; row < batch; ++row) {
      Sequence& sequence = *joining[static_cast<size_t>(row)];
      if (!advance(sequence, logits[row].data_ptr<float>(), vocab, on_chunk)) continue;
      cache->add_row(present, row, sequence.prompt_length);
      running.push_back(&sequence);
    }
    return running;
  }

  // One decode step of every running sequence; finished ones leave the batch.
  void decode(std::vector<Sequence*>& running, KvCache& cache,
              const ChunkCallback& on_chunk) const {
    const auto rows = static_cast<int64_t>(running.size());
    at::Tensor ids = at::empty({rows, 1}, at::kLong);
    at::Tensor positions = at::empty({rows, 1}, at::kLong);
    auto id_values = ids.accessor<int64_t, 2>();
    auto position_values = positions.accessor<int64_t, 2>();
    for (int64_t row = 0; row < rows; ++row) {
      id_values[row][0] = running[static_cast<size_t>(row)]->next_token;
      position_values[row][0] = cache.length(row);  // real tokens before this one
    }
    std::vector<at::Tensor> inputs = {ids, cache.attention_mask(), positions};
    for (at::Tensor& past : cache.window()) inputs.push_back(std::move(past));
    std::vector<at::Tensor> outputs = runner->run_method(spec.decode_method, std::move(inputs));
    const at::Tensor logits = cpu_rows(outputs[0]);
    cache.append(std::vector<at::Tensor>(outputs.begin() + 1, outputs.end()));
    const int64_t vocab = logits.size(1);
    std::vector<bool> keep(static_cast<size_t>(rows));
    for (int64_t row = 0; row < rows; ++row) {
      keep[static_cast<size_t>(row)] = advance(*running[static_cast<size_t>(row)],
                                               logits[row].data_ptr<float>(), vocab, on_chunk);
    }
    // Remove from the end, so the rows still to visit keep their places.
    for (int64_t row = rows - 1; row >= 0; --row) {
      if (keep[static_cast<size_t>(row)]) continue;
      cache.remove_row(row);
      running[static_cast<size_t>(row)] = running.back();
      running.pop_back();
    }
  }
};

Generator::Generator(const Runner& runner, GeneratorOptions options)
    : impl_(std::make_unique<Impl>()) {
  if (options.max_batch < 1) {
    throw InvalidInput("max_batch must be at least 1, not " + std::to_string(options.max_batch));
  }
  impl_->runner = &runner;
  impl_->options = options;
  impl_->spec = detail::read_generation_spec(runner.manifest());
  if (runner.has_tokenizer()) impl_->tokenizer = &runner.tokenizer();
}

Generator::~Generator() = default;
Generator::Generator(Generator&&) noexcept = default;
Generator& Generator::operator=(Generator&&) noexcept = default;

GenerationParams Generator::defaults() const { return impl_->spec.defaults; }

void Generator::check(const std::vector<int64_t>& prompt, const GenerationParams& params) const {
  (void)impl_->resolve(prompt, params, "the prompt");
}

std::vector<GenerationResult> Generator::generate_ids(
    const std::vector<std::vector<int64_t>>& prompts, const GenerationParams& params,
    const ChunkCallback& on_chunk) const {
  return generate_ids(prompts, std::vector<GenerationParams>(prompts.size(), params), on_chunk);
}

std::vector<GenerationResult> Generator::generate_ids(
    const std::vector<std::vector<int64_t>>& prompts, const std::vector<GenerationParams>& params,
    const ChunkCallback& on_chunk) const {
  const Impl& impl = *impl_;
  if (params.size() != prompts.size()) {
    throw InvalidInput("generate_ids takes one GenerationParams per prompt (" +
                       std::to_string(prompts.size()) + " prompts, " +
                       std::to_string(params.size()) + " params)");
  }
  // Everything is checked before anything runs.
  std::deque<Sequence> sequences;
  int64_t columns = 1;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto length = static_cast<int64_t>(prompts[i].size());
    const std::string which = prompts.size() > 1 ? "prompt " + std::to_string(i) : "the prompt";
    sequences.emplace_back(i, prompts[i], impl.resolve(prompts[i], params[i], which),
                           impl.tokenizer);
    const int64_t need =
        std::min(impl.spec.max_context, length + sequences.back().params.max_new_tokens);
    columns = std::max(columns, need + 1);
  }

  const c10::InferenceMode inference_guard;
  std::optional<KvCache> cache;
  std::vector<Sequence*> running;
  size_t next = 0;
  while (next < sequences.size() || !running.empty()) {
    // Continuous batching: waiting prompts take the rows finished sequences left.
    const size_t free_rows = static_cast<size_t>(impl.options.max_batch) - running.size();
    if (free_rows > 0 && next < sequences.size()) {
      std::vector<Sequence*> joining;
      while (joining.size() < free_rows && next < sequences.size()) {
        joining.push_back(&sequences[next++]);
      }
      for (Sequence* sequence : impl.prefill(joining, cache, columns, on_chunk)) {
        running.push_back(sequence);
      }
    }
    if (!running.empty()) impl.decode(running, *cache, on_chunk);
  }

  std::vector<GenerationResult> results;
  results.reserve(sequences.size());
  for (Sequence& sequence : sequences) {
    GenerationResult result;
    result.token_ids.assign(sequence.tokens.begin() + sequence.prompt_length,
                            sequence.tokens.end());
    result.text = sequence.text.text();
    result.finish_reason = sequence.finish_reason;
    result.prompt_tokens = sequence.prompt_length;
    results.push_back(std::move(result));
  }
  return results;
}

std::vector<GenerationResult> Generator::generate(const std::vector<std::string>& prompts,
                                                  const GenerationParams& params,
                                                  const ChunkCallback& on_chunk) const {
  if (impl_->tokenizer == nullptr) {
    throw InvalidInput("this export has no tokenizer: generate from token ids (generate_ids)");
  }
  std::vector<std::vector<int64_t>> ids;
  ids.reserve(prompts.size());
  for (const std::string& prompt : prompts) ids.push_back(impl_->tokenizer->encode(prompt).ids);
  return generate_ids(ids, params, on_chunk);
}

}  // namespace tsrunner
