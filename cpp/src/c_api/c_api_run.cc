// The C API's raw-tensor call (Runner::run on caller buffers) and its outputs handle.

#include <ATen/ops/empty.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "c_api/handles.h"

using tsrunner::c_api::guarded;
using tsrunner::c_api::require;
using tsrunner::c_api::require_pointer;

struct tsr_outputs {
  struct Output {
    std::string name;
    int32_t dtype;
    std::vector<int64_t> shape;
    at::Tensor tensor;  // contiguous, on the CPU: what `data` points into
  };
  std::vector<Output> outputs;
};

namespace {

constexpr const char* kRun = "tsr_runner_run";

std::optional<at::ScalarType> scalar_type(int32_t dtype) {
  switch (dtype) {
    case TSR_INT64:
      return at::kLong;
    case TSR_FLOAT32:
      return at::kFloat;
    case TSR_INT32:
      return at::kInt;
    case TSR_FLOAT64:
      return at::kDouble;
    case TSR_FLOAT16:
      return at::kHalf;
    case TSR_BFLOAT16:
      return at::kBFloat16;
    case TSR_BOOL:
      return at::kBool;
    case TSR_UINT8:
      return at::kByte;
    case TSR_INT8:
      return at::kChar;
    default:
      return std::nullopt;
  }
}

std::optional<int32_t> c_dtype(at::ScalarType type) {
  for (int32_t dtype = TSR_INT64; dtype <= TSR_INT8; ++dtype) {
    if (scalar_type(dtype) == type) return dtype;
  }
  return std::nullopt;
}

// Checks one caller tensor completely (pointers, dtype, rank, every dimension, the element
// count's overflow, the byte size) before anything reads its data, then copies it in.
at::Tensor input_tensor(const tsr_tensor& input, const std::string& label) {
  const std::optional<at::ScalarType> type = scalar_type(input.dtype);
  require(type.has_value(), kRun,
          label + ".dtype is " + std::to_string(input.dtype) + ", not a tsr_dtype");
  require(input.rank >= 1 && input.rank <= TSR_MAX_RANK, kRun,
          label + ".rank is " + std::to_string(input.rank) + "; it must be 1 to " +
              std::to_string(TSR_MAX_RANK));
  require_pointer(input.shape, kRun, (label + ".shape").c_str());
  const size_t item_size = tsr_dtype_size(input.dtype);
  // Bytes must fit size_t and elements int64_t (LibTorch's sizes).
  const uint64_t limit = std::min<uint64_t>(std::numeric_limits<size_t>::max() / item_size,
                                            std::numeric_limits<int64_t>::max());
  uint64_t elements = 1;
  std::vector<int64_t> shape(input.shape, input.shape + input.rank);
  for (size_t d = 0; d < shape.size(); ++d) {
    const std::string dim = label + ".shape[" + std::to_string(d) + "]";
    require(shape[d] >= 1, kRun,
            dim + " is " + std::to_string(shape[d]) + "; dimensions must be at least 1");
    require(elements <= limit / static_cast<uint64_t>(shape[d]), kRun,
            dim + " makes the element count overflow");
    elements *= static_cast<uint64_t>(shape[d]);
  }
  const uint64_t bytes = elements * item_size;
  require(input.data_bytes == bytes, kRun,
          label + ".data_bytes is " + std::to_string(input.data_bytes) + " but its shape needs " +
              std::to_string(bytes));
  require_pointer(input.data, kRun, (label + ".data").c_str());
  at::Tensor tensor = at::empty(shape, at::TensorOptions().dtype(*type));
  std::memcpy(tensor.data_ptr(), input.data, bytes);
  return tensor;
}

tsrunner::TensorMap input_map(const tsr_tensor* inputs, size_t count) {
  tsrunner::TensorMap map;
  if (count > 0) require_pointer(inputs, kRun, "inputs");
  for (size_t i = 0; i < count; ++i) {
    std::string label = "inputs[" + std::to_string(i) + "]";
    require_pointer(inputs[i].name, kRun, (label + ".name").c_str());
    const std::string name = inputs[i].name;
    label += " (\"" + name + "\")";
    require(map.count(name) == 0, kRun, label + " repeats the name of an earlier input");
    map.emplace(name, input_tensor(inputs[i], label));
  }
  return map;
}

tsr_outputs::Output output(const std::string& name, const at::Tensor& tensor) {
  const std::optional<int32_t> dtype = c_dtype(tensor.scalar_type());
  if (!dtype) {
    throw tsrunner::Error("output \"" + name + "\" has dtype " +
                          std::string(c10::toString(tensor.scalar_type())) +
                          ", which the C API has no tsr_dtype for");
  }
  at::Tensor host = tensor.to(at::kCPU).contiguous();
  std::vector<int64_t> shape(host.sizes().begin(), host.sizes().end());
  return {name, *dtype, std::move(shape), std::move(host)};
}

void fill(const tsr_outputs::Output& output, tsr_tensor* tensor) {
  tensor->name = output.name.c_str();
  tensor->dtype = output.dtype;
  tensor->shape = output.shape.data();
  tensor->rank = output.shape.size();
  tensor->data = output.tensor.data_ptr();
  tensor->data_bytes = output.tensor.nbytes();
}

}  // namespace

extern "C" {

tsr_status tsr_runner_run(const tsr_runner* runner, const tsr_tensor* inputs, size_t input_count,
                          tsr_outputs** out, tsr_error** error) {
  return guarded(error, [&] {
    require_pointer(out, kRun, "out");
    *out = nullptr;
    require_pointer(runner, kRun, "runner");
    tsrunner::TensorMap results = runner->runner.run(input_map(inputs, input_count));
    auto handle = std::make_unique<tsr_outputs>();
    // The manifest's order first (what Python's Runner.run returns), then anything else.
    for (const tsrunner::TensorSpec& spec : runner->runner.manifest().outputs) {
      const auto found = results.find(spec.name);
      if (found == results.end()) continue;
      handle->outputs.push_back(output(found->first, found->second));
      results.erase(found);
    }
    for (const auto& [name, tensor] : results) handle->outputs.push_back(output(name, tensor));
    *out = handle.release();
  });
}

void tsr_outputs_free(tsr_outputs* outputs) { delete outputs; }

size_t tsr_outputs_count(const tsr_outputs* outputs) {
  return outputs == nullptr ? 0 : outputs->outputs.size();
}

tsr_status tsr_outputs_at(const tsr_outputs* outputs, size_t index, tsr_tensor* tensor,
                          tsr_error** error) {
  constexpr const char* function = "tsr_outputs_at";
  return guarded(error, [&] {
    require_pointer(outputs, function, "outputs");
    require_pointer(tensor, function, "tensor");
    require(index < outputs->outputs.size(), function,
            "index " + std::to_string(index) + " is out of range (" +
                std::to_string(outputs->outputs.size()) + " outputs)");
    fill(outputs->outputs[index], tensor);
  });
}

tsr_status tsr_outputs_find(const tsr_outputs* outputs, const char* name, tsr_tensor* tensor,
                            tsr_error** error) {
  constexpr const char* function = "tsr_outputs_find";
  return guarded(error, [&] {
    require_pointer(outputs, function, "outputs");
    require_pointer(name, function, "name");
    require_pointer(tensor, function, "tensor");
    for (const tsr_outputs::Output& output : outputs->outputs) {
      if (output.name == name) return fill(output, tensor);
    }
    std::string known;
    for (const tsr_outputs::Output& output : outputs->outputs) {
      known += (known.empty() ? "" : ", ") + output.name;
    }
    throw tsrunner::InvalidInput(std::string(function) + ": no output named \"" + name +
                                 "\" (outputs: " + known + ")");
  });
}

}  // extern "C"
