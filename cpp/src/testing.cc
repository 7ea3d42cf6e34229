#include "tsrunner/testing.h"

#include "generation/generation_spec.h"
#include "generation/logits_processing.h"
#include "generation/text_stream.h"

// The load and run hooks live in runner.cc, beside the code that calls them.
namespace tsrunner::testing {

std::vector<std::string> stream_pieces(const Tokenizer& tokenizer, const std::vector<int64_t>& ids,
                                       const std::vector<std::string>& stop) {
  detail::TextStream stream(&tokenizer, stop);
  std::vector<std::string> pieces;
  pieces.reserve(ids.size() + 1);
  for (const int64_t id : ids) pieces.push_back(stream.push(id));
  pieces.push_back(stream.finish());
  return pieces;
}

std::vector<float> warp_scores(std::vector<float> scores, double temperature, int64_t top_k,
                               double top_p, double min_p) {
  detail::ResolvedParams params;
  params.temperature = temperature;
  params.top_k = top_k;
  params.top_p = top_p;
  params.min_p = min_p;
  detail::apply_warpers(scores, params);
  return scores;
}

}  // namespace tsrunner::testing
