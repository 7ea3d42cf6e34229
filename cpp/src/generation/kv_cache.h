#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "generation_spec.h"

namespace tsrunner::detail {

// The KV cache of a running batch, allocated once per batch (grown only when a sequence needs
// more columns than any before it), never per token. One key and one value buffer per layer,
// [rows, heads, columns, head_dim]. Row r holds its sequence's `length(r)` positions right-aligned
// at the batch's common end column, so the decode step reads one window [end - width, end) of
// every buffer, rows shorter than `width` masked on the left (left padding), and writes its new
// keys/values into the column `end` in place (the export's decode takes the window and that
// column: generation_export.py), so no step copies the cache.
class KvCache {
 public:
  // At most `rows` rows, allocated as they are reserved (or added).
  KvCache(const GenerationSpec& spec, int64_t rows, int64_t columns, at::ScalarType dtype);

  int64_t rows() const { return rows_; }
  int64_t width() const { return width_; }
  int64_t length(int64_t row) const { return lengths_[static_cast<size_t>(row)]; }

  // Allocates room for `rows` rows (at most the constructor's), keeping what the rows hold.
  void reserve_rows(int64_t rows);
  // Row `row` (must be the first free row, rows()) takes the last `length` positions of
  // sequence `source_row` of a prefill's present tensors.
  void add_row(const std::vector<at::Tensor>& present, int64_t source_row, int64_t length);
  // Drops row `row`; the last row moves into its place (rows stay 0..rows()-1).
  void remove_row(int64_t row);

  // Row i takes what row source_rows[i] held (beam search: each beam continues another's
  // history); every row must have the same length.
  void reorder(const std::vector<int64_t>& source_rows);

  // The decode step's cache: per layer (key, value, key, value, ...) a view [rows, heads, width +
  // 1, head_dim] of the window and the free column after it, which the step writes in place.
  // Makes room for that column first (moving the window or growing the buffers, rarely).
  std::vector<at::Tensor> step_window();
  // The attention mask of the next decode step: [rows, width + 1], 1 where a row has a token.
  at::Tensor attention_mask() const;
  // After a decode step wrote the free column of step_window(): every row is one longer.
  void commit_step();

 private:
  void make_room(int64_t left_needed, int64_t right_needed);
  void move_window(int64_t new_end, int64_t columns);

  std::vector<at::Tensor> buffers_;  // key, value per layer
  std::vector<int64_t> lengths_;     // per row
  int64_t rows_ = 0;
  int64_t width_ = 0;  // the longest row
  int64_t end_ = 0;    // the column after every row's last position
};

}  // namespace tsrunner::detail
