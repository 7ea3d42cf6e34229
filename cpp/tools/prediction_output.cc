#include "prediction_output.h"

#include <charconv>
#include <cmath>

namespace tsrunner::cli {

std::string prediction_to_json(const Prediction& prediction) {
  std::string out = "{\"embedding\":[";
  char buffer[32];
  for (size_t i = 0; i < prediction.embedding.size(); ++i) {
    if (i > 0) out.push_back(',');
    const float value = prediction.embedding[i];
    if (!std::isfinite(value)) {
      out += "null";  // JSON has no NaN or infinity
      continue;
    }
    const auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
    out.append(buffer, result.ptr);
  }
  out += "]}";
  return out;
}

}  // namespace tsrunner::cli
