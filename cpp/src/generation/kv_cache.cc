#include "kv_cache.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "tsrunner/errors.h"

namespace tsrunner::detail {

KvCache::KvCache(const GenerationSpec& spec, int64_t rows, int64_t columns, at::ScalarType dtype)
    : lengths_(static_cast<size_t>(rows), 0) {
  // No rows yet: reserve_rows() allocates what the running batch needs (a generator may run
  // one sequence where it could run eight).
  const auto options = at::TensorOptions().dtype(dtype);
  for (int64_t layer = 0; layer < spec.num_layers; ++layer) {
    buffers_.push_back(at::empty({0, spec.key_heads, columns, spec.key_dim}, options));
    buffers_.push_back(at::empty({0, spec.value_heads, columns, spec.value_dim}, options));
  }
}

void KvCache::reserve_rows(int64_t rows) {
  const int64_t allocated = buffers_[0].size(0);
  if (rows <= allocated) return;
  const auto most = static_cast<int64_t>(lengths_.size());
  if (rows > most) throw Error("KV cache: no free row");
  // Doubled, so that sequences joining one by one reallocate a handful of times at most.
  const int64_t grown = std::min(most, std::max(rows, 2 * allocated));
  for (at::Tensor& buffer : buffers_) {
    // Zeros: masked positions are read by attention (and multiplied by a zero weight), so they
    // must hold finite numbers.
    at::Tensor larger =
        at::zeros({grown, buffer.size(1), buffer.size(2), buffer.size(3)}, buffer.options());
    if (rows_ > 0) larger.narrow(0, 0, rows_).copy_(buffer.narrow(0, 0, rows_));
    buffer = larger;
  }
}

void KvCache::move_window(int64_t new_end, int64_t columns) {
  const int64_t capacity = buffers_[0].size(2);
  if (columns > capacity) {
    // Grown geometrically, so a batch reallocates a handful of times in its life at most.
    const int64_t grown = std::max(columns, capacity * 2);
    for (at::Tensor& buffer : buffers_) {
      at::Tensor larger =
          at::zeros({buffer.size(0), buffer.size(1), grown, buffer.size(3)}, buffer.options());
      larger.narrow(2, new_end - width_, width_).copy_(buffer.narrow(2, end_ - width_, width_));
      buffer = larger;
    }
  } else if (new_end != end_ && width_ > 0) {
    for (at::Tensor& buffer : buffers_) {
      const at::Tensor moved = buffer.narrow(2, end_ - width_, width_).clone();
      buffer.narrow(2, new_end - width_, width_).copy_(moved);
    }
  }
  end_ = new_end;
}

void KvCache::make_room(int64_t left_needed, int64_t right_needed) {
  const int64_t capacity = buffers_[0].size(2);
  if (end_ >= left_needed && end_ + right_needed <= capacity) return;
  // Move the window to the left edge (or as far left as `left_needed` allows).
  const int64_t new_end = std::max(width_, left_needed);
  move_window(new_end, new_end + right_needed);
}

void KvCache::add_row(const std::vector<at::Tensor>& present, int64_t source_row, int64_t length) {
  reserve_rows(rows_ + 1);
  make_room(length, 1);
  for (size_t i = 0; i < buffers_.size(); ++i) {
    const at::Tensor& source = present[i];
    buffers_[i][rows_]
        .narrow(1, end_ - length, length)
        .copy_(source[source_row].narrow(1, source.size(2) - length, length));
  }
  lengths_[static_cast<size_t>(rows_)] = length;
  width_ = std::max(width_, length);
  ++rows_;
}

void KvCache::remove_row(int64_t row) {
  const int64_t last = rows_ - 1;
  if (row != last) {
    const int64_t length = lengths_[static_cast<size_t>(last)];
    for (at::Tensor& buffer : buffers_) {
      buffer[row]
          .narrow(1, end_ - length, length)
          .copy_(buffer[last].narrow(1, end_ - length, length));
    }
    lengths_[static_cast<size_t>(row)] = length;
  }
  lengths_[static_cast<size_t>(last)] = 0;
  --rows_;
  width_ = rows_ == 0 ? 0 : *std::max_element(lengths_.begin(), lengths_.begin() + rows_);
  if (rows_ == 0) end_ = 0;
}

void KvCache::reorder(const std::vector<int64_t>& source_rows) {
  const at::Tensor index = at::tensor(source_rows, at::kLong);
  for (at::Tensor& buffer : buffers_) {
    at::Tensor rows = buffer.narrow(0, 0, rows_).narrow(2, end_ - width_, width_);
    rows.copy_(rows.index_select(0, index));  // index_select copies first
  }
}

std::vector<at::Tensor> KvCache::step_window() {
  make_room(width_, 1);
  std::vector<at::Tensor> views;
  views.reserve(buffers_.size());
  for (const at::Tensor& buffer : buffers_) {
    views.push_back(buffer.narrow(0, 0, rows_).narrow(2, end_ - width_, width_ + 1));
  }
  return views;
}

at::Tensor KvCache::attention_mask() const {
  at::Tensor mask = at::ones({rows_, width_ + 1}, at::kLong);
  auto values = mask.accessor<int64_t, 2>();
  for (int64_t row = 0; row < rows_; ++row) {
    for (int64_t column = 0; column < width_ - lengths_[static_cast<size_t>(row)]; ++column) {
      values[row][column] = 0;
    }
  }
  return mask;
}

void KvCache::commit_step() {
  ++end_;
  ++width_;
  for (int64_t row = 0; row < rows_; ++row) ++lengths_[static_cast<size_t>(row)];
}

}  // namespace tsrunner::detail
