#pragma once

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

namespace tsrunner::cli {

// {"shape": [...], "dtype": "...", "data": [...]} with the data flattened in row-major order.
// Floats are printed as the shortest decimal that reads back to the same value, so nothing is
// lost in the text; NaN and infinities become null (JSON has no spelling for them).
nlohmann::ordered_json tensor_to_json(const at::Tensor& tensor);

}  // namespace tsrunner::cli
