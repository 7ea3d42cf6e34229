#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "tsrunner/pipeline.h"

namespace tsrunner::cli {

// `tsrun model.pt --text ... [--text-pair ...]`: one JSON result per --text, in order.
// `pairs` is empty or one per text; for a multiple-choice export they are the choices, and
// every text is scored against all of them.
void print_text_predictions(const Pipeline& pipeline, const std::vector<std::string>& texts,
                            const std::vector<std::string>& pairs, std::ostream& out);

}  // namespace tsrunner::cli
