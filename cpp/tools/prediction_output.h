#pragma once

#include <string>

#include "tsrunner/pipeline.h"

namespace tsrunner::cli {

// One JSON object per prediction, keyed by task (as Python's Runner.predict): {"embedding":
// [...]}, {"labels": [...]}, {"masks": [...]}, {"entities": [...]}, {"answer": {...}}. Floats
// are printed as the shortest decimal that reads back to the same float32.
std::string prediction_to_json(const Prediction& prediction);

}  // namespace tsrunner::cli
