#pragma once

#include <cstddef>
#include <string>

#include "tsrunner/pipeline.h"

namespace tsrunner::cli {

struct BatchOptions {
  std::string input = "-";   // JSON lines; "-" is stdin
  std::string output = "-";  // JSON lines; "-" is stdout, otherwise written atomically
  size_t batch_size = 32;
  // Lines read, sorted by length and run before reading on: bounds memory on inputs of any
  // size. A larger window pads less (its batches are closer in length); a smaller one answers
  // sooner (docs/cli.md gives both sides measured).
  size_t window = 4096;
  // Batches run at once, each on its own thread with --threads intra-op threads.
  size_t concurrent_batches = 1;
  // Task options of every line (--top-k, --prompt-name, ...): the queue passes them per call.
  TaskOptions task;
};

// Throws InvalidInput when the input is missing or a directory, or the output cannot be
// written (a directory, or in a missing directory): checked before the model loads.
void check_batch_paths(const BatchOptions& options);

// Streams JSON lines through the pipeline: reads a window of lines, runs them in batches of
// similar length, writes one result per input line in input order (blank lines are skipped; an
// "id" field is copied to the line's answer). A bad line (invalid JSON,
// no "text"/"input_ids", wrong types, ids out of range) is reported on stderr with its line
// number and answered in place with {"line": N, "error": "..."}; the run goes on, and the
// function returns the number of bad lines. Throws on runtime failures (the output file is
// then left untouched).
size_t run_batch(const Pipeline& pipeline, const BatchOptions& options);

}  // namespace tsrunner::cli
