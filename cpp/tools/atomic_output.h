#pragma once

#include <fstream>
#include <ostream>
#include <string>

namespace tsrunner::cli {

// Throws InvalidInput when `path` (not "-") cannot be an output file: a directory, or in a
// directory that does not exist. Cheap: callers check before doing the work.
void check_output_path(const std::string& path);

// Writes to a temporary file beside the target and renames it into place at commit(), so a
// failed or interrupted (SIGINT/SIGTERM) run never leaves a partial output file; "-" writes
// to stdout directly. One at a time per process (the signal handler knows one temporary).
class AtomicOutput {
 public:
  explicit AtomicOutput(const std::string& path);
  ~AtomicOutput();
  AtomicOutput(const AtomicOutput&) = delete;
  AtomicOutput& operator=(const AtomicOutput&) = delete;

  std::ostream& stream();
  // Flushes and moves the file into place; throws when writing failed.
  void commit();

 private:
  std::string path_;
  std::string temp_;
  std::ofstream file_;
  bool committed_ = false;
};

}  // namespace tsrunner::cli
