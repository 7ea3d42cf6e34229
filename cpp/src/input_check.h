#pragma once

#include <vector>

#include "tsrunner/manifest.h"
#include "tsrunner/runner.h"

namespace tsrunner::detail {

// Checks caller inputs against the manifest (names, dtypes, ranks, consistent batch and
// sequence sizes, the shape contract, value ranges) and returns them in the model's positional
// order, with defaulted inputs filled in. Throws InvalidInput naming the input, and for bad
// values the position and the value, before anything runs.
std::vector<at::Tensor> check_and_order_inputs(const Manifest& manifest, const TensorMap& inputs);

}  // namespace tsrunner::detail
