#pragma once

#include <functional>
#include <string>

#include "kernel_policy.h"
#include "kernel_settings.h"

namespace torch::jit {
struct Module;
}  // namespace torch::jit

namespace tsrunner::detail {

// Rewrites `module` in place for the kernel path asked for ("auto", "onednn", "default"): freezes
// it (every method kept), then replaces each float32 aten::linear whose weight is a constant
// with mkldnn::_linear_pointwise on a weight packed now, for this CPU (never stored packed):
// Linear layers reading the same input merge into one GEMM, and a following GELU or residual
// add folds into the GEMM's epilogue. `smoke_test(module, min_rows)` then runs the rewritten
// module (again with at least `min_rows` GEMM rows when the small-row kernel took the first); when
// anything fails the module is left as loaded and one line goes to stderr. Auto takes oneDNN
// on x86-64 CPUs with AVX2 or better when the device is the CPU. `compute` "bf16" packs the
// weights in bfloat16 and runs those GEMMs in bf16: on tsrunner's own kernel where
// plan_linears() says so (tsrunner::linear_bf16_panels; bf16_kernel=false declines it), else
// on oneDNN (tsrunner::linear_bf16); it throws InvalidInput with kernel path "default", off the
// CPU, or on a CPU without bf16 instructions. `kernels` picks tsrunner's own kernels (the
// runner's options, resolved once).
KernelPath apply_cpu_fast_path(torch::jit::Module& module, const std::string& kernel_path,
                               const std::string& compute, bool on_cpu,
                               const KernelSettings& kernels,
                               const std::function<void(torch::jit::Module&, int64_t)>& smoke_test);

}  // namespace tsrunner::detail
