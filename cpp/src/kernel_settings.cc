#include "kernel_settings.h"

#include <cstdlib>
#include <string>

#include "tsrunner/errors.h"

namespace tsrunner::detail {
namespace {

std::optional<std::string> environment(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

KernelSettings::Attention parse_attention(const std::string& value, const std::string& source) {
  if (value == "on" || value == "1") return KernelSettings::Attention::kInPlace;
  if (value == "op") return KernelSettings::Attention::kOp;
  if (value == "off" || value == "0") return KernelSettings::Attention::kOff;
  throw InvalidInput(source + " must be on, op or off, not \"" + value + "\"");
}

bool parse_switch(const std::string& value, const std::string& source) {
  if (value == "1" || value == "on" || value == "true") return true;
  if (value == "0" || value == "off" || value == "false") return false;
  throw InvalidInput(source + " must be 1 or 0 (on/off), not \"" + value + "\"");
}

int64_t parse_rows(const std::string& value, const std::string& source) {
  char* end = nullptr;
  const long long parsed = std::strtoll(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || parsed < 0) {
    throw InvalidInput(source + " must be a row count >= 0, not \"" + value + "\"");
  }
  return static_cast<int64_t>(parsed);
}

}  // namespace

KernelSettings resolve_kernel_settings(const RunnerOptions& options) {
  KernelSettings settings;
  if (options.fused_attention) {
    settings.attention = parse_attention(*options.fused_attention, "fused_attention");
  } else if (auto value = environment("TSR_FUSED_ATTENTION")) {
    settings.attention = parse_attention(*value, "TSR_FUSED_ATTENTION");
  }
  if (options.fused_layer_norm) {
    settings.layer_norm = *options.fused_layer_norm;
  } else if (auto value = environment("TSR_FUSED_LAYER_NORM")) {
    settings.layer_norm = parse_switch(*value, "TSR_FUSED_LAYER_NORM");
  }
  if (options.bf16_kernel) {
    settings.bf16_kernel = *options.bf16_kernel;
  } else if (auto value = environment("TSR_BF16_KERNEL")) {
    settings.bf16_kernel = parse_switch(*value, "TSR_BF16_KERNEL");
  }
  if (options.small_gemm_rows) {
    if (*options.small_gemm_rows < 0) {
      throw InvalidInput("small_gemm_rows must be a row count >= 0, not " +
                         std::to_string(*options.small_gemm_rows));
    }
    settings.small_gemm_rows = *options.small_gemm_rows;
  } else if (auto value = environment("TSR_SMALL_GEMM_ROWS")) {
    settings.small_gemm_rows = parse_rows(*value, "TSR_SMALL_GEMM_ROWS");
  }
  return settings;
}

}  // namespace tsrunner::detail
