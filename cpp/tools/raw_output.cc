#include "raw_output.h"

#include <ATen/ATen.h>

namespace tsrunner::cli {

nlohmann::ordered_json tensor_to_json(const at::Tensor& tensor) {
  const at::Tensor cpu = tensor.detach().to(at::kCPU).contiguous();
  nlohmann::ordered_json shape = nlohmann::ordered_json::array();
  for (int64_t size : cpu.sizes()) shape.push_back(size);

  nlohmann::ordered_json data = nlohmann::ordered_json::array();
  std::string dtype;
  if (at::isFloatingType(cpu.scalar_type())) {
    dtype = cpu.scalar_type() == at::kDouble     ? "float64"
            : cpu.scalar_type() == at::kHalf     ? "float16"
            : cpu.scalar_type() == at::kBFloat16 ? "bfloat16"
                                                 : "float32";
    // float16/bfloat16/float32 widen to double exactly; the shortest double text reads back to
    // that double, which narrows back to the original value.
    const at::Tensor wide = cpu.to(at::kDouble);
    const double* values = wide.data_ptr<double>();
    for (int64_t i = 0; i < wide.numel(); ++i) data.push_back(values[i]);
  } else if (cpu.scalar_type() == at::kBool) {
    dtype = "bool";
    const at::Tensor bytes = cpu.to(at::kByte);
    const uint8_t* values = bytes.data_ptr<uint8_t>();
    for (int64_t i = 0; i < bytes.numel(); ++i) data.push_back(values[i] != 0);
  } else {
    dtype = cpu.scalar_type() == at::kLong  ? "int64"
            : cpu.scalar_type() == at::kInt ? "int32"
                                            : std::string(c10::toString(cpu.scalar_type()));
    const at::Tensor wide = cpu.to(at::kLong);
    const int64_t* values = wide.data_ptr<int64_t>();
    for (int64_t i = 0; i < wide.numel(); ++i) data.push_back(values[i]);
  }
  return {{"shape", std::move(shape)}, {"dtype", dtype}, {"data", std::move(data)}};
}

}  // namespace tsrunner::cli
