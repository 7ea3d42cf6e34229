#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tsrunner/export.h"

namespace tsrunner {
class Tokenizer;
}

// For tsrunner's own tests only, not part of the product API: hooks into the load and run path
// and a few internals reachable from Python's tests (tsrunner._core._testing). Nothing here is
// stable across releases.
namespace tsrunner::testing {

// Called with the model path after Runner has verified the archive and before it deserialises
// any TorchScript, so a test can replace or rewrite the file in exactly that window
// (tests/cpp/open_once_test.cc, tests/python/test_open_once.py). Empty (the default) in normal
// use. Set it only while no Runner is being constructed.
using AfterVerifyHook = std::function<void(const std::string& path)>;
TSR_API void set_after_verify_hook(AfterVerifyHook hook);

// Called inside every Runner::run with the runner's intra-op thread count in effect, just before
// the model runs (tests/cpp/sdk_safety_test.cc). Set it only while no run is in flight.
using RunHook = std::function<void()>;
TSR_API void set_run_hook(RunHook hook);

// The Generator's incremental detokenizer alone: the text each token of `ids` releases, then what
// the end of the sequence releases (tests check the pieces against the tokenizer's decode).
TSR_API std::vector<std::string> stream_pieces(const Tokenizer& tokenizer,
                                               const std::vector<int64_t>& ids,
                                               const std::vector<std::string>& stop);

// The Generator's sampling warpers alone (temperature, top-k, top-p, min-p, in HF's order) on
// one distribution's scores, for tests against Transformers' own.
TSR_API std::vector<float> warp_scores(std::vector<float> scores, double temperature, int64_t top_k,
                                       double top_p, double min_p);

}  // namespace tsrunner::testing
