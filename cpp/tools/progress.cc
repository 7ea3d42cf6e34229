#include "progress.h"

#include <unistd.h>

#include <cstdio>

namespace tsrunner::cli {

Progress::Progress(std::optional<size_t> total_bytes)
    : enabled_(isatty(STDERR_FILENO) != 0),
      total_bytes_(total_bytes),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() {
  if (enabled_ && !finished_) std::fputs("\n", stderr);
}

void Progress::update(size_t lines, size_t bytes_read) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(200)) return;
  last_draw_ = now;
  draw(lines, bytes_read, false);
}

void Progress::finish(size_t lines) {
  if (!enabled_ || finished_) return;
  draw(lines, total_bytes_.value_or(0), true);
  finished_ = true;
}

void Progress::draw(size_t lines, size_t bytes_read, bool final_line) {
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = seconds > 0 ? static_cast<double>(lines) / seconds : 0.0;
  std::fprintf(stderr, "\rtsrun: %zu lines, %.1f lines/s", lines, rate);
  if (total_bytes_ && *total_bytes_ > 0 && !final_line) {
    const double fraction = static_cast<double>(bytes_read) / static_cast<double>(*total_bytes_);
    const double eta = fraction > 0 ? seconds * (1.0 - fraction) / fraction : 0.0;
    std::fprintf(stderr, ", %3.0f%%, ETA %02d:%02d   ", 100.0 * fraction,
                 static_cast<int>(eta) / 60, static_cast<int>(eta) % 60);
  } else {
    std::fputs("                    ", stderr);
  }
  if (final_line) std::fputs("\n", stderr);
  std::fflush(stderr);
}

}  // namespace tsrunner::cli
