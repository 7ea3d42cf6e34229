#pragma once

#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tsrunner/export.h"

namespace tsrunner {

class Runner;

// What one generation may set; an unset field takes the model's default (its
// generation_config.json over Hugging Face's global defaults, as HF `generate` applies them:
// manifest "generation.defaults"). Checked by Generator: a value out of range is an
// InvalidInput naming the parameter and its range.
struct GenerationParams {
  std::optional<int64_t> max_new_tokens;  // >= 1; default: max_new_tokens, else max_length - prompt
  std::optional<int64_t> min_new_tokens;  // EOS is suppressed until this many new tokens
  // Default: true when the request sets temperature, top_k, top_p or min_p (as OpenAI's
  // and TGI's APIs read them), else the model's do_sample.
  std::optional<bool> do_sample;
  std::optional<double> temperature;            // >= 0; 0 means greedy
  std::optional<int64_t> top_k;                 // >= 0; 0 disables
  std::optional<double> top_p;                  // (0, 1]
  std::optional<double> min_p;                  // [0, 1]
  std::optional<double> repetition_penalty;     // > 0; 1 disables
  std::optional<int64_t> no_repeat_ngram_size;  // >= 0; 0 disables
  // The sampler's seed. The same seed gives the same tokens whatever else is in the batch: each
  // sequence draws from its own generator. Unset: a random seed.
  std::optional<uint64_t> seed;
  // Token ids that end the sequence (not part of the result). Unset: the model's EOS ids.
  std::optional<std::vector<int64_t>> eos_token_ids;
  bool ignore_eos = false;  // generate max_new_tokens whatever comes (benchmarks)
  // Strings that end the sequence when they appear in the decoded continuation, matched across
  // token boundaries; the text returned (and streamed) stops before them. At most 4.
  std::vector<std::string> stop;
  // Beam search (HF generate's num_beams > 1, greedy): a request's beams run as one batch of
  // their own, not inside the continuous batch; its result is streamed as one chunk at the end.
  std::optional<int64_t> num_beams;             // >= 1; 1 is greedy or sampling
  std::optional<double> length_penalty;         // a finished beam scores sum(logprobs) / len^this
  std::optional<std::string> early_stopping;    // "true", "false" (HF's heuristic) or "never"
  std::optional<int64_t> num_return_sequences;  // beams returned, 1..num_beams (the best first)
};

struct GenerationResult {
  std::vector<int64_t> token_ids;  // the new tokens (EOS not included)
  std::string text;                // their decoded text, cut before a stop string
  std::string finish_reason;       // "stop" (EOS or a stop string) or "length"
  int64_t prompt_tokens = 0;       // an encoder-decoder's: the source's tokens
  // Beam search: the best hypothesis's score (sum of log-probabilities / length^length_penalty),
  // and with num_return_sequences > 1, the next best hypotheses, best first.
  double score = 0;
  std::vector<GenerationResult> alternatives;
};

// One piece of streamed output: the text that became final with the latest token (complete
// UTF-8 characters only; may be empty while a character or a possible stop string is pending).
// Concatenating every chunk of a sequence gives its GenerationResult::text.
struct GenerationChunk {
  size_t index = 0;  // which prompt
  int64_t token_id = -1;
  std::string text;
  bool finished = false;
  std::string finish_reason;  // set on the last chunk
};
// Called on the generating thread after every step for each sequence that advanced. Returning
// false cancels that sequence (its slot is freed at the next step; finish_reason "cancelled").
using ChunkCallback = std::function<bool(const GenerationChunk&)>;

struct GeneratorOptions {
  // The most sequences decoded together. More prompts wait and join the running batch as soon
  // as a sequence finishes (continuous batching).
  int64_t max_batch = 8;
};

// Text generation over a Runner loaded from a generation export (manifest "generation": a
// decoder with prefill and decode methods, or an encoder-decoder with encode and decode methods,
// and an explicit KV cache). Greedy, sampled or beam-search decoding with HF `generate`'s logits
// processors; see docs/generation.md. For an encoder-decoder a prompt is the source (the
// encoder's input); the continuation is the decoder's output.
class TSR_API Generator {
 public:
  // Throws InvalidInput when the runner's archive is not a generation export (re-export it
  // with this version's `tsrunner export --task causal-lm`) or has no tokenizer for text use.
  explicit Generator(const Runner& runner, GeneratorOptions options = {});
  ~Generator();
  Generator(Generator&&) noexcept;
  Generator& operator=(Generator&&) noexcept;

  // The defaults a request starts from (the model's, as the manifest records them).
  GenerationParams defaults() const;

  // Throws InvalidInput, as generate_ids would, when `prompt` or `params` cannot be generated
  // from (an empty prompt, one too long for the context, an id outside the vocabulary, a
  // parameter out of range); runs nothing.
  void check(const std::vector<int64_t>& prompt, const GenerationParams& params) const;

  // Generates a continuation of every prompt (token ids, as the tokenizer gives them with its
  // special tokens). Sequences of different lengths share batches (left padding); prompts join
  // and leave the running batch between steps. Throws InvalidInput for bad parameters or a
  // prompt that does not fit the model's context, before generating anything.
  std::vector<GenerationResult> generate_ids(const std::vector<std::vector<int64_t>>& prompts,
                                             const GenerationParams& params,
                                             const ChunkCallback& on_chunk = {}) const;
  // Per-prompt parameters (one entry per prompt).
  std::vector<GenerationResult> generate_ids(const std::vector<std::vector<int64_t>>& prompts,
                                             const std::vector<GenerationParams>& params,
                                             const ChunkCallback& on_chunk = {}) const;

  // The same from text, encoded with the runner's tokenizer.
  std::vector<GenerationResult> generate(const std::vector<std::string>& prompts,
                                         const GenerationParams& params,
                                         const ChunkCallback& on_chunk = {}) const;

  // Queues one request for this generator's own decoding thread (started by the first call):
  // it joins the running batch between two steps, next to the requests of other callers and
  // threads, and leaves it when it finishes (continuous batching across callers; what a server
  // feeds from its request queue). Thread-safe. `on_chunk` runs on the decoding thread (index
  // 0). Throws InvalidInput at once for a request generate_ids would refuse; the future holds
  // the result, or the model's error (which fails the batch it ran in, not the generator).
  // Destroying the Generator fails what is still queued or running.
  std::future<GenerationResult> submit(std::vector<int64_t> prompt, const GenerationParams& params,
                                       ChunkCallback on_chunk = {}) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// What an export's saved generation defaults make the Generator refuse, one sentence each:
// HF's beam sampling and every saved setting of generation_config.json that HF applies and this
// runner does not. `manifest_json` is the manifest as stored (Manifest::raw_json); empty for a
// manifest with no "generation" record, or text that is not a JSON object. For `tsrun info` and
// the exporter's warning (Python: tsrunner._core.generation_refusals).
TSR_API std::vector<std::string> generation_refusals(const std::string& manifest_json);

}  // namespace tsrunner
