#include "tsrunner/dtype.h"

#include <c10/core/ScalarType.h>

namespace tsrunner {
namespace {

struct DTypeRow {
  DType dtype;
  std::string_view manifest_name;
  std::string_view protocol_name;
  c10::ScalarType scalar_type;
  size_t size;
};

constexpr DTypeRow kRows[] = {
    {DType::kInt64, "int64", "INT64", c10::ScalarType::Long, 8},
    {DType::kInt32, "int32", "INT32", c10::ScalarType::Int, 4},
    {DType::kInt16, "int16", "INT16", c10::ScalarType::Short, 2},
    {DType::kInt8, "int8", "INT8", c10::ScalarType::Char, 1},
    {DType::kUInt8, "uint8", "UINT8", c10::ScalarType::Byte, 1},
    {DType::kBool, "bool", "BOOL", c10::ScalarType::Bool, 1},
    {DType::kFloat32, "float32", "FP32", c10::ScalarType::Float, 4},
    {DType::kFloat64, "float64", "FP64", c10::ScalarType::Double, 8},
    {DType::kFloat16, "float16", "FP16", c10::ScalarType::Half, 2},
    {DType::kBFloat16, "bfloat16", "BF16", c10::ScalarType::BFloat16, 2},
};

const DTypeRow* row_of(DType dtype) {
  for (const DTypeRow& row : kRows) {
    if (row.dtype == dtype) return &row;
  }
  return nullptr;
}

}  // namespace

std::string_view dtype_name(DType dtype) {
  const DTypeRow* row = row_of(dtype);
  return row ? row->manifest_name : "unknown";
}

std::optional<DType> parse_dtype(std::string_view name) {
  for (const DTypeRow& row : kRows) {
    if (row.manifest_name == name) return row.dtype;
  }
  return std::nullopt;
}

std::string_view protocol_datatype(DType dtype) {
  const DTypeRow* row = row_of(dtype);
  return row ? row->protocol_name : "";
}

std::optional<DType> parse_protocol_datatype(std::string_view name) {
  for (const DTypeRow& row : kRows) {
    if (row.protocol_name == name) return row.dtype;
  }
  return std::nullopt;
}

std::optional<c10::ScalarType> scalar_type(DType dtype) {
  const DTypeRow* row = row_of(dtype);
  if (!row) return std::nullopt;
  return row->scalar_type;
}

DType dtype_of(c10::ScalarType type) {
  for (const DTypeRow& row : kRows) {
    if (row.scalar_type == type) return row.dtype;
  }
  return DType::kUnknown;
}

size_t dtype_size(DType dtype) {
  const DTypeRow* row = row_of(dtype);
  return row ? row->size : 0;
}

}  // namespace tsrunner
