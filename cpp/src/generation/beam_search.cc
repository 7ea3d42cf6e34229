#include "beam_search.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <optional>

#include "cross_cache.h"
#include "kv_cache.h"
#include "logits_processing.h"
#include "model_step.h"
#include "text_stream.h"

namespace tsrunner::detail {
namespace {

constexpr double kMasked = -1.0e9;  // HF's "cannot be chosen" offset

struct Hypothesis {
  std::vector<int64_t> tokens;  // prompt and generated
  bool finished = false;
};

bool is_eos(const ResolvedParams& params, int64_t token) {
  return std::find(params.eos_token_ids.begin(), params.eos_token_ids.end(), token) !=
         params.eos_token_ids.end();
}

// A finished hypothesis as a result: the new tokens without a final EOS, and their text.
GenerationResult as_result(const Hypothesis& hypothesis, double score, const Sequence& sequence,
                           const Tokenizer* tokenizer) {
  GenerationResult result;
  result.token_ids.assign(hypothesis.tokens.begin() + sequence.prompt_length,
                          hypothesis.tokens.end());
  result.finish_reason = "length";
  if (!result.token_ids.empty() && is_eos(sequence.params, result.token_ids.back())) {
    result.token_ids.pop_back();
    result.finish_reason = "stop";
  }
  TextStream text(tokenizer, {});
  for (const int64_t token : result.token_ids) (void)text.push(token);
  (void)text.finish();
  result.text = text.text();
  result.score = score;
  result.prompt_tokens = sequence.source.empty() ? sequence.prompt_length
                                                 : static_cast<int64_t>(sequence.source.size());
  return result;
}

}  // namespace

void run_beam_search(const Runner& runner, const GenerationSpec& spec, const Tokenizer* tokenizer,
                     Sequence& sequence) {
  const ResolvedParams& params = sequence.params;
  const int64_t beams = params.num_beams;
  const int64_t prompt_length = sequence.prompt_length;
  const int64_t max_length = std::min(prompt_length + params.max_new_tokens, spec.max_context);
  const auto eos_count = static_cast<int64_t>(params.eos_token_ids.size());
  // HF keeps (EOS ids + 1) x beams candidates (at least 2 x beams), so that beams remain after
  // the best ones end.
  const int64_t keep = std::max<int64_t>(2, 1 + eos_count) * beams;
  const double length_penalty = params.length_penalty;
  const std::string& early_stopping = params.early_stopping;

  // The first step runs once: every beam starts from the same prompt.
  const StepOutput first = run_first_step(runner, spec, {&sequence});
  KvCache cache(spec, beams, max_length + 1, first.present.at(0).scalar_type());
  std::optional<CrossCache> cross;
  if (spec.encoder_decoder) {
    cross.emplace(spec, beams, static_cast<int64_t>(sequence.source.size()),
                  first.present.at(0).scalar_type());
  }
  for (int64_t beam = 0; beam < beams; ++beam) {
    cache.add_row(first.present, 0, prompt_length);
    if (cross) cross->add_row(first.cross, 0, static_cast<int64_t>(sequence.source.size()));
  }
  at::Tensor logits = first.logits.expand({beams, first.logits.size(1)});
  const int64_t vocab = logits.size(1);

  std::vector<Hypothesis> running(static_cast<size_t>(beams), Hypothesis{sequence.tokens});
  at::Tensor running_scores = at::zeros({1, beams}, at::kFloat);
  running_scores.narrow(1, 1, beams - 1).fill_(kMasked);  // only beam 0's tokens at first
  std::vector<Hypothesis> finished(static_cast<size_t>(beams));
  at::Tensor finished_scores = at::full({1, beams}, kMasked, at::kFloat);
  at::Tensor is_finished = at::zeros({1, beams}, at::kBool);
  bool improvable = true;  // HF's is_early_stop_heuristic_unsatisfied
  const at::Tensor top_beams = at::arange(keep, at::kLong).lt(beams).unsqueeze(0);

  for (int64_t length = prompt_length;; ++length) {
    // Log-probabilities, HF's processors per beam, plus each beam's running score.
    at::Tensor log_probs = at::log_softmax(logits, -1).contiguous();
    for (int64_t beam = 0; beam < beams; ++beam) {
      float* row = log_probs[beam].data_ptr<float>();
      std::vector<float> scores(row, row + vocab);
      apply_processors(scores, running[static_cast<size_t>(beam)].tokens, length - prompt_length,
                       params);
      std::copy(scores.begin(), scores.end(), row);
    }
    log_probs = (log_probs + running_scores.reshape({beams, 1})).reshape({1, beams * vocab});
    auto [top_scores, top_indices] = at::topk(log_probs, keep);

    std::vector<Hypothesis> candidates(static_cast<size_t>(keep));
    std::vector<int64_t> candidate_beam(static_cast<size_t>(keep));
    at::Tensor hits = at::zeros({1, keep}, at::kBool);
    for (int64_t i = 0; i < keep; ++i) {
      const int64_t index = top_indices[0][i].item<int64_t>();
      const int64_t token = index % vocab;
      candidate_beam[static_cast<size_t>(i)] = index / vocab;
      Hypothesis& candidate = candidates[static_cast<size_t>(i)];
      candidate.tokens = running[static_cast<size_t>(index / vocab)].tokens;
      candidate.tokens.push_back(token);
      // HF's stopping criteria: an EOS, or max_length reached.
      hits[0][i] = is_eos(params, token) || length + 1 >= max_length;
    }

    // The best `beams` candidates that go on.
    const at::Tensor going_on = top_scores + hits.to(at::kFloat) * kMasked;
    const at::Tensor next = std::get<1>(at::topk(going_on, beams));
    std::vector<Hypothesis> next_running;
    std::vector<int64_t> source_beams;
    for (int64_t j = 0; j < beams; ++j) {
      const int64_t i = next[0][j].item<int64_t>();
      next_running.push_back(candidates[static_cast<size_t>(i)]);
      source_beams.push_back(candidate_beam[static_cast<size_t>(i)]);
    }
    running_scores = at::take_along_dim(going_on, next, 1);

    // Finished candidates among the top `beams` replace worse finished hypotheses.
    const at::Tensor just_finished = hits.logical_and(top_beams);
    at::Tensor finished_candidates =
        top_scores / std::pow(static_cast<double>(length + 1 - prompt_length), length_penalty);
    const bool full = is_finished.all().item<bool>() && early_stopping == "true";
    finished_candidates = finished_candidates + (full ? 1.0 : 0.0) * kMasked;
    finished_candidates = finished_candidates + (improvable ? 0.0 : 1.0) * kMasked;
    finished_candidates = finished_candidates + just_finished.logical_not() * kMasked;
    const at::Tensor merged_scores = at::cat({finished_scores, finished_candidates}, 1);
    const at::Tensor merged_finished = at::cat({is_finished, just_finished}, 1);
    const at::Tensor best = std::get<1>(at::topk(merged_scores, beams));
    std::vector<Hypothesis> next_finished;
    for (int64_t j = 0; j < beams; ++j) {
      const int64_t i = best[0][j].item<int64_t>();
      next_finished.push_back(i < beams ? finished[static_cast<size_t>(i)]
                                        : candidates[static_cast<size_t>(i - beams)]);
    }
    finished = std::move(next_finished);
    finished_scores = at::take_along_dim(merged_scores, best, 1);
    is_finished = at::take_along_dim(merged_finished, best, 1);
    running = std::move(next_running);

    // HF's stopping rule for the whole search.
    const int64_t done = length + 1;
    const int64_t best_length = early_stopping == "never" && length_penalty > 0.0
                                    ? max_length - prompt_length
                                    : done - prompt_length;
    const at::Tensor best_possible =
        running_scores.narrow(1, 0, 1) / std::pow(static_cast<double>(best_length), length_penalty);
    const at::Tensor worst_finished =
        at::where(is_finished, std::get<0>(at::min(finished_scores, 1, true)),
                  at::full({1, 1}, kMasked, at::kFloat));
    improvable = improvable && best_possible.gt(worst_finished).any().item<bool>();
    const bool all_done = is_finished.all().item<bool>() && early_stopping == "true";
    if (!improvable || all_done || hits.all().item<bool>()) break;

    // The chosen beams' histories, then their next tokens through the model.
    cache.reorder(source_beams);
    std::vector<int64_t> tokens;
    for (const Hypothesis& hypothesis : running) tokens.push_back(hypothesis.tokens.back());
    const StepOutput output =
        run_decode_step(runner, spec, tokens, cache, cross ? &*cross : nullptr);
    logits = output.logits;
  }

  std::vector<GenerationResult> results;
  for (int64_t j = 0; j < params.num_return_sequences; ++j) {
    results.push_back(as_result(finished[static_cast<size_t>(j)],
                                finished_scores[0][j].item<double>(), sequence, tokenizer));
  }
  const GenerationResult& best = results.front();
  sequence.tokens.insert(sequence.tokens.end(), best.token_ids.begin(), best.token_ids.end());
  sequence.finish_reason = best.finish_reason;
  sequence.score = best.score;
  sequence.alternatives.assign(results.begin() + 1, results.end());
  std::string text;
  for (const int64_t token : best.token_ids) text += sequence.text.push(token);
  text += sequence.text.finish();
  if (sequence.on_chunk) {
    GenerationChunk chunk;
    chunk.index = sequence.index;
    chunk.token_id = best.token_ids.empty() ? -1 : best.token_ids.back();
    chunk.text = text;
    chunk.finished = true;
    chunk.finish_reason = sequence.finish_reason;
    (void)sequence.on_chunk(chunk);
  }
}

}  // namespace tsrunner::detail
