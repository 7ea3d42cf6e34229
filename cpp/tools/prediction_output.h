#pragma once

#include <string>

#include "tsrunner/pipeline.h"

namespace tsrunner::cli {

// One JSON object per prediction, e.g. {"embedding":[0.0123,...]}. Floats are printed as the
// shortest decimal that reads back to the same float32.
std::string prediction_to_json(const Prediction& prediction);

}  // namespace tsrunner::cli
