#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "cross_cache.h"
#include "generation_spec.h"
#include "kv_cache.h"
#include "text_stream.h"
#include "tsrunner/generator.h"

namespace tsrunner {
class Runner;
class Tokenizer;
}  // namespace tsrunner

namespace tsrunner::detail {

// One prompt's generation state.
struct Sequence {
  size_t index = 0;
  std::vector<int64_t> source;  // an encoder-decoder's encoder input (else empty)
  std::vector<int64_t> tokens;  // prompt (an encoder-decoder's decoder start) then generated
  int64_t prompt_length = 0;
  ResolvedParams params;
  std::mt19937_64 rng;
  TextStream text;
  ChunkCallback on_chunk;   // may be empty
  int64_t next_token = -1;  // chosen, not yet fed to the model
  std::string finish_reason;
  double score = 0;                            // beam search's
  std::vector<GenerationResult> alternatives;  // beam search's next best

  Sequence(size_t index, std::vector<int64_t> prompt, ResolvedParams resolved,
           const Tokenizer* tokenizer, ChunkCallback callback);

  int64_t generated() const { return static_cast<int64_t>(tokens.size()) - prompt_length; }
  GenerationResult result() const;
};

// The running batch of one generator: sequences are prefilled as they join (between steps),
// decoded together, and leave when they finish (continuous batching). Not thread-safe: one
// thread drives a loop.
class DecodeLoop {
 public:
  DecodeLoop(const Runner& runner, const GenerationSpec& spec, int64_t max_batch);

  int64_t free_rows() const;
  bool idle() const { return running_.empty(); }

  // Prefills (or encodes) `joining` (at most free_rows(), padded into one batch), picks each
  // one's first token; those still running take a row. Returns the ones that finished at once.
  // `columns`: the cache length to allocate if none is yet (it grows when needed).
  std::vector<Sequence*> admit(const std::vector<Sequence*>& joining, int64_t columns);
  // One decode step of every running sequence; returns those that finished (and left).
  std::vector<Sequence*> step();
  // After a failure: every running sequence, removed, and the cache dropped.
  std::vector<Sequence*> abandon();

 private:
  bool advance(Sequence& sequence, const float* row, int64_t vocab) const;

  const Runner& runner_;
  const GenerationSpec& spec_;
  int64_t max_batch_;
  std::optional<KvCache> cache_;
  std::optional<CrossCache> cross_;  // encoder-decoders
  std::vector<Sequence*> running_;   // row i of the cache is running_[i]
};

}  // namespace tsrunner::detail
