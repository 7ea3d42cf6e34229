#include "cross_cache.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "tsrunner/errors.h"

namespace tsrunner::detail {

CrossCache::CrossCache(const GenerationSpec& spec, int64_t rows, int64_t columns,
                       at::ScalarType dtype)
    : lengths_(static_cast<size_t>(rows), 0) {
  // Zeros: padded positions are read by attention (with a zero weight), so must be finite.
  const auto options = at::TensorOptions().dtype(dtype);
  for (int64_t layer = 0; layer < spec.num_layers; ++layer) {
    buffers_.push_back(
        at::zeros({rows, spec.cross_key_heads, columns, spec.cross_key_dim}, options));
    buffers_.push_back(
        at::zeros({rows, spec.cross_value_heads, columns, spec.cross_value_dim}, options));
  }
}

void CrossCache::add_row(const std::vector<at::Tensor>& cross, int64_t source_row, int64_t length) {
  if (rows_ >= static_cast<int64_t>(lengths_.size())) throw Error("cross cache: no free row");
  const int64_t capacity = buffers_[0].size(2);
  if (length > capacity) {
    // A longer source than any before: grown geometrically, rows kept.
    const int64_t grown = std::max(length, capacity * 2);
    for (at::Tensor& buffer : buffers_) {
      at::Tensor larger =
          at::zeros({buffer.size(0), buffer.size(1), grown, buffer.size(3)}, buffer.options());
      larger.narrow(2, 0, capacity).copy_(buffer);
      buffer = larger;
    }
  }
  for (size_t i = 0; i < buffers_.size(); ++i) {
    buffers_[i][rows_].narrow(1, 0, length).copy_(cross[i][source_row].narrow(1, 0, length));
  }
  lengths_[static_cast<size_t>(rows_)] = length;
  width_ = std::max(width_, length);
  ++rows_;
}

void CrossCache::remove_row(int64_t row) {
  const int64_t last = rows_ - 1;
  if (row != last) {
    const int64_t length = lengths_[static_cast<size_t>(last)];
    for (at::Tensor& buffer : buffers_) {
      buffer[row].narrow(1, 0, length).copy_(buffer[last].narrow(1, 0, length));
    }
    lengths_[static_cast<size_t>(row)] = length;
  }
  lengths_[static_cast<size_t>(last)] = 0;
  --rows_;
  width_ = rows_ == 0 ? 0 : *std::max_element(lengths_.begin(), lengths_.begin() + rows_);
}

std::vector<at::Tensor> CrossCache::window() const {
  std::vector<at::Tensor> views;
  views.reserve(buffers_.size());
  for (const at::Tensor& buffer : buffers_) {
    views.push_back(buffer.narrow(0, 0, rows_).narrow(2, 0, width_));
  }
  return views;
}

at::Tensor CrossCache::attention_mask() const {
  at::Tensor mask = at::zeros({rows_, width_}, at::kLong);
  auto values = mask.accessor<int64_t, 2>();
  for (int64_t row = 0; row < rows_; ++row) {
    for (int64_t column = 0; column < lengths_[static_cast<size_t>(row)]; ++column) {
      values[row][column] = 1;
    }
  }
  return mask;
}

}  // namespace tsrunner::detail
