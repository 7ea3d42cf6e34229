#pragma once

namespace tsrunner::cli {

// Keeps glibc's malloc from returning freed model activations to the kernel between calls.
//
// By default glibc serves large blocks with mmap and trims the heap after frees, so every
// batch of a new shape page-faults its activations in again (measured on the text benchmark:
// docs/benchmark-text.md). Serving blocks up to 32 MiB from the heap and trimming only above
// 1 GiB keeps the process at its peak working set instead, which is what an inference process
// wants. No-op on other C libraries.
void keep_freed_memory_for_reuse();

}  // namespace tsrunner::cli
