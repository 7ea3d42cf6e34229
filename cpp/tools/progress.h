#pragma once

#include <chrono>
#include <cstddef>
#include <optional>

namespace tsrunner::cli {

// A one-line progress display on stderr (count, rate, and percent/ETA when the input size is
// known). Shown only when stderr is a terminal, so logs and pipes stay clean.
class Progress {
 public:
  explicit Progress(std::optional<size_t> total_bytes);
  ~Progress();
  void update(size_t lines, size_t bytes_read);
  void finish(size_t lines);

 private:
  void draw(size_t lines, size_t bytes_read, bool final_line);

  bool enabled_;
  bool finished_ = false;
  std::optional<size_t> total_bytes_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace tsrunner::cli
