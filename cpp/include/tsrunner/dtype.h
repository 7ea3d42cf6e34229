#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "tsrunner/export.h"

// An opaque declaration: this header names LibTorch's element type without including LibTorch.
namespace c10 {
enum class ScalarType : int8_t;
}  // namespace c10

namespace tsrunner {

// A tensor's element type. One table (dtype.cc) holds its three spellings: the manifest's
// ("int64", docs/format.md), the Open Inference Protocol's ("INT64", what tsrun serve's /v2
// routes and Triton speak) and LibTorch's (at::kLong).
enum class DType {
  kUnknown,  // a plain TorchScript module's tensors: the module does not say
  kInt64,
  kInt32,
  kInt16,
  kInt8,
  kUInt8,
  kBool,
  kFloat32,
  kFloat64,
  kFloat16,
  kBFloat16,
};

// The manifest's name ("int64"); "unknown" for kUnknown.
TSR_API std::string_view dtype_name(DType dtype);
// A manifest name -> DType; nullopt for a name not in the table.
TSR_API std::optional<DType> parse_dtype(std::string_view name);

// The Open Inference Protocol's name ("INT64", "FP32"); "" for kUnknown.
TSR_API std::string_view protocol_datatype(DType dtype);
// A protocol name -> DType; nullopt for a name not in the table (UINT16, BYTES, ...).
TSR_API std::optional<DType> parse_protocol_datatype(std::string_view name);

// LibTorch's element type; nullopt for kUnknown.
TSR_API std::optional<c10::ScalarType> scalar_type(DType dtype);
// LibTorch's element type -> DType; kUnknown for types outside the table (complex, float8, ...).
TSR_API DType dtype_of(c10::ScalarType type);

// Bytes per element; 0 for kUnknown.
TSR_API size_t dtype_size(DType dtype);

}  // namespace tsrunner
