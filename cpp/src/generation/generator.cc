#include "tsrunner/generator.h"

#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>

#include "generation/beam_search.h"
#include "generation/decode_loop.h"
#include "generation/generation_spec.h"
#include "tsrunner/errors.h"
#include "tsrunner/runner.h"
#include "tsrunner/tokenizer.h"

namespace tsrunner {

using detail::DecodeLoop;
using detail::GenerationSpec;
using detail::ResolvedParams;
using detail::Sequence;

struct Generator::Impl {
  const Runner* runner = nullptr;
  GeneratorOptions options;
  GenerationSpec spec;
  const Tokenizer* tokenizer = nullptr;

  // submit(): requests wait here for the decoding thread, which owns them from then on.
  struct Submitted {
    std::unique_ptr<Sequence> sequence;
    std::promise<GenerationResult> promise;
  };
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<std::unique_ptr<Submitted>> waiting;
  bool stopping = false;
  std::thread worker;  // started by the first submit()

  ~Impl() {
    {
      const std::lock_guard<std::mutex> lock(mutex);
      stopping = true;
    }
    wake.notify_all();
    if (worker.joinable()) worker.join();
  }

  // The request's parameters, resolved; InvalidInput naming `which` prompt when it cannot run.
  // An encoder-decoder's prompt is its source: HF's max_length and min_length count the
  // decoder start token instead.
  ResolvedParams resolve(const std::vector<int64_t>& prompt, const GenerationParams& params,
                         const std::string& which) const {
    const auto length = static_cast<int64_t>(prompt.size());
    if (length == 0) throw InvalidInput(which + " is empty (no tokens)");
    if (spec.encoder_decoder && length > spec.max_source) {
      throw InvalidInput(which + " has " + std::to_string(length) +
                         " tokens; this model's encoder takes at most " +
                         std::to_string(spec.max_source));
    }
    if (!spec.encoder_decoder && length >= spec.max_context) {
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
    return detail::resolve_params(spec, params, spec.encoder_decoder ? 1 : length);
  }

  // A sequence for `prompt`: a decoder continues it; an encoder-decoder encodes it and starts
  // its decoder from the decoder start token.
  std::unique_ptr<Sequence> sequence_for(size_t index, std::vector<int64_t> prompt,
                                         ResolvedParams resolved, ChunkCallback on_chunk) const {
    if (!spec.encoder_decoder) {
      return std::make_unique<Sequence>(index, std::move(prompt), std::move(resolved), tokenizer,
                                        std::move(on_chunk));
    }
    auto sequence =
        std::make_unique<Sequence>(index, std::vector<int64_t>{spec.decoder_start_token_id},
                                   std::move(resolved), tokenizer, std::move(on_chunk));
    sequence->source = std::move(prompt);
    return sequence;
  }

  // Cache columns for sequences like `sequence`: room for two of them, so that rows of different
  // ages fit before the cache has to grow.
  int64_t columns_for(const Sequence& sequence) const {
    return 2 * std::min(spec.max_context, sequence.prompt_length + sequence.params.max_new_tokens) +
           1;
  }

  // The decoding thread of submit(): waiting requests join the running batch between steps.
  void serve() {
    const c10::InferenceMode inference_guard;
    DecodeLoop loop(*runner, spec, options.max_batch);
    std::unordered_map<const Sequence*, std::unique_ptr<Submitted>> active;
    std::vector<std::unique_ptr<Submitted>> beam_requests;
    auto settle = [&active](const std::vector<Sequence*>& finished) {
      for (const Sequence* sequence : finished) {
        const auto found = active.find(sequence);
        found->second->promise.set_value(sequence->result());
        active.erase(found);
      }
    };
    while (true) {
      std::vector<Sequence*> joining;
      {
        std::unique_lock<std::mutex> lock(mutex);
        wake.wait(lock, [&] { return stopping || !waiting.empty() || !loop.idle(); });
        if (stopping) break;
        while (static_cast<int64_t>(joining.size()) < loop.free_rows() && !waiting.empty()) {
          std::unique_ptr<Submitted> request = std::move(waiting.front());
          waiting.pop_front();
          if (request->sequence->params.num_beams > 1) {
            beam_requests.push_back(std::move(request));
            continue;
          }
          joining.push_back(request->sequence.get());
          active.emplace(request->sequence.get(), std::move(request));
        }
      }
      // A beam-search request runs alone, its beams one batch, between two steps of the
      // running batch (which waits meanwhile).
      for (auto& request : beam_requests) {
        try {
          detail::run_beam_search(*runner, spec, tokenizer, *request->sequence);
          request->promise.set_value(request->sequence->result());
        } catch (...) {
          request->promise.set_exception(std::current_exception());
        }
      }
      beam_requests.clear();
      try {
        const int64_t columns = joining.empty() ? 1 : columns_for(*joining.front());
        settle(loop.admit(joining, columns));
        settle(loop.step());
      } catch (...) {
        // A failed step fails every sequence in the batch; the generator goes on.
        (void)loop.abandon();
        for (auto& [sequence, request] : active) {
          request->promise.set_exception(std::current_exception());
        }
        active.clear();
      }
    }
    const auto gone = std::make_exception_ptr(Error("the generator was destroyed"));
    for (auto& [sequence, request] : active) request->promise.set_exception(gone);
    for (auto& request : waiting) request->promise.set_exception(gone);
  }
};

Generator::Generator(const Runner& runner, GeneratorOptions options)
    : impl_(std::make_unique<Impl>()) {
  if (options.max_batch < 1) {
    throw InvalidInput("max_batch must be at least 1, not " + std::to_string(options.max_batch));
  }
  // The cache lives in host memory and decode writes into it in place: on another device the
  // writes would land in copies and the next tokens would be wrong, so refuse rather than guess.
  if (!c10::Device(runner.options().device).is_cpu()) {
    throw InvalidInput("generation runs on the CPU only; this runner's device is \"" +
                       runner.options().device + "\"");
  }
  impl_->runner = &runner;
  impl_->options = options;
  impl_->spec = detail::read_generation_spec(runner.manifest());
  if (impl_->spec.token_biases && runner.manifest().vocab_size) {
    // HF's processors refuse ids outside the vocabulary (ValueError at generate): so do we.
    const int64_t vocab = *runner.manifest().vocab_size;
    const auto check = [vocab](const std::vector<detail::SequenceBias>& entries, const char* name) {
      for (const detail::SequenceBias& entry : entries) {
        for (int64_t id : entry.tokens) {
          if (id >= vocab) {
            throw InvalidInput(std::string("the model's saved ") + name + " names token " +
                               std::to_string(id) + ", outside the vocabulary [0, " +
                               std::to_string(vocab) + ")");
          }
        }
      }
    };
    check(impl_->spec.token_biases->sequence_bias, "sequence_bias");
    check(impl_->spec.token_biases->bad_words, "bad_words_ids");
  }
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
  std::vector<std::unique_ptr<Sequence>> sequences;
  std::vector<Sequence*> batched;  // beam-search requests run alone instead
  int64_t columns = 1;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const std::string which = prompts.size() > 1 ? "prompt " + std::to_string(i) : "the prompt";
    sequences.push_back(
        impl.sequence_for(i, prompts[i], impl.resolve(prompts[i], params[i], which), on_chunk));
    Sequence& sequence = *sequences.back();
    if (sequence.params.num_beams > 1) continue;
    batched.push_back(&sequence);
    columns = std::max(columns, std::min(impl.spec.max_context,
                                         sequence.prompt_length + sequence.params.max_new_tokens) +
                                    1);
  }

  const c10::InferenceMode inference_guard;
  for (const auto& sequence : sequences) {
    if (sequence->params.num_beams > 1) {
      detail::run_beam_search(*impl.runner, impl.spec, impl.tokenizer, *sequence);
    }
  }
  DecodeLoop loop(*impl.runner, impl.spec, impl.options.max_batch);
  size_t next = 0;
  while (next < batched.size() || !loop.idle()) {
    // Continuous batching: waiting prompts take the rows finished sequences left.
    std::vector<Sequence*> joining;
    while (static_cast<int64_t>(joining.size()) < loop.free_rows() && next < batched.size()) {
      joining.push_back(batched[next++]);
    }
    (void)loop.admit(joining, columns);
    (void)loop.step();
  }

  std::vector<GenerationResult> results;
  results.reserve(sequences.size());
  for (const auto& sequence : sequences) results.push_back(sequence->result());
  return results;
}

std::future<GenerationResult> Generator::submit(std::vector<int64_t> prompt,
                                                const GenerationParams& params,
                                                ChunkCallback on_chunk) const {
  Impl& impl = *impl_;
  auto request = std::make_unique<Impl::Submitted>();
  ResolvedParams resolved = impl.resolve(prompt, params, "the prompt");
  request->sequence =
      impl.sequence_for(0, std::move(prompt), std::move(resolved), std::move(on_chunk));
  std::future<GenerationResult> result = request->promise.get_future();
  {
    const std::lock_guard<std::mutex> lock(impl.mutex);
    if (!impl.worker.joinable()) impl.worker = std::thread([&impl] { impl.serve(); });
    impl.waiting.push_back(std::move(request));
  }
  impl.wake.notify_one();
  return result;
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
