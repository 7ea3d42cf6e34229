#include "kernel_flags.h"

#include <string>

#include "range_check.h"

namespace tsrunner::cli {

void add_kernel_flags(CLI::App& app, RunnerOptions& options) {
  app.add_option("--kernel-path,--engine", options.kernel_path,
                 "kernels: auto (oneDNN on x86-64 CPUs with AVX2; tsrun's one-shot --ids and "
                 "--text keep default), onednn or default (--engine: its deprecated name)")
      ->check(CLI::IsMember({"auto", "onednn", "default"}));
  app.add_option_function<std::string>(
         "--fused-attention",
         [&options](const std::string& value) { options.fused_attention = value; },
         "tsrunner's short-sequence attention kernel: on (default), op (on LibTorch's views) or "
         "off")
      ->check(CLI::IsMember({"on", "op", "off"}));
  app.add_option_function<std::string>(
         "--fused-layer-norm",
         [&options](const std::string& value) { options.fused_layer_norm = value == "on"; },
         "tsrunner's few-row layer norm kernel: on (default) or off")
      ->check(CLI::IsMember({"on", "off"}));
  app.add_option_function<std::string>(
         "--bf16-kernel",
         [&options](const std::string& value) { options.bf16_kernel = value == "on"; },
         "--compute bf16 on tsrunner's AVX512-BF16 kernel: on (default) or off (oneDNN's)")
      ->check(CLI::IsMember({"on", "off"}));
  app.add_option_function<int64_t>(
         "--small-gemm-rows", [&options](int64_t rows) { options.small_gemm_rows = rows; },
         "float32 Linear calls of at most this many rows on the small-row AVX-512 kernel "
         "(default 48; 0: never)")
      ->check(integer_in(0, 1 << 20));
}

void copy_kernel_flags(const RunnerOptions& flags, RunnerOptions& options) {
  options.kernel_path = flags.kernel_path;
  if (flags.fused_attention) options.fused_attention = flags.fused_attention;
  if (flags.fused_layer_norm) options.fused_layer_norm = flags.fused_layer_norm;
  if (flags.bf16_kernel) options.bf16_kernel = flags.bf16_kernel;
  if (flags.small_gemm_rows) options.small_gemm_rows = flags.small_gemm_rows;
}

}  // namespace tsrunner::cli
