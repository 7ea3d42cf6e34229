#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "generation_spec.h"

namespace tsrunner::detail {

// The cross-attention keys/values of a running encoder-decoder batch: computed once per
// sequence by the encode method, kept until the sequence leaves. One key and one value buffer
// per decoder layer, [rows, heads, columns, head_dim]; row r holds its source's `length(r)`
// positions from column 0 (right padding, as the encoder saw them), so a decode step reads the
// columns [0, width) of every buffer with an encoder attention mask of 0 past each row's end.
class CrossCache {
 public:
  CrossCache(const GenerationSpec& spec, int64_t rows, int64_t columns, at::ScalarType dtype);

  int64_t rows() const { return rows_; }
  // Row rows() takes the first `length` positions of row `source_row` of encode's cross tensors.
  void add_row(const std::vector<at::Tensor>& cross, int64_t source_row, int64_t length);
  // Drops row `row`; the last row moves into its place (as KvCache::remove_row).
  void remove_row(int64_t row);

  std::vector<at::Tensor> window() const;  // key, value per layer: [rows, heads, width, dim]
  at::Tensor attention_mask() const;       // [rows, width], 1 on each row's source

 private:
  std::vector<at::Tensor> buffers_;
  std::vector<int64_t> lengths_;
  int64_t rows_ = 0;
  int64_t width_ = 0;
};

}  // namespace tsrunner::detail
