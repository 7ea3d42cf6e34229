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

// Bounds what `tsrun serve` keeps after a batch, undoing keep_freed_memory_for_reuse. A server
// runs batches of ever new shapes (rows x longest) on several worker threads for hours: kept
// freed activations fragment each thread's arena, and oneDNN's per-shape primitive caches
// (ideep's LRU_CACHE_CAPACITY, oneDNN's ONEDNN_PRIMITIVE_CACHE_CAPACITY, 1024 entries each)
// grew ~0.9 MB per new shape. Measured under the 64-client load test: +192 MB in 20 s before,
// flat after (docs/serve.md, "Memory"). Blocks over 4 MiB go to mmap and back to the kernel
// when freed; the caches keep 16 entries unless the environment sets them. Call before any
// model loads (the caches read their capacity once).
void bound_memory_for_serving();

}  // namespace tsrunner::cli
