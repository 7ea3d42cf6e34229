#include "allocator_tuning.h"

#include <cstdlib>  // defines __GLIBC__ where the C library is glibc

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace tsrunner::cli {

void keep_freed_memory_for_reuse() {
#if defined(__GLIBC__)
  // 32 MiB is the largest mmap threshold mallopt accepts on 64-bit glibc (MiniLM's FFN
  // activation for 32 x 128 tokens is 24 MiB). Setting either value turns off glibc's own
  // adaptation of both, so both are set.
  mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

void bound_memory_for_serving() {
#if defined(__GLIBC__)
  // Activations over 4 MiB are mmapped, instead of heap that stays at its most fragmented peak.
  // Not 1 MiB: then a batch's FFN activations (2 MiB for 11 x 30 tokens of MiniLM) were
  // mmapped and faulted in afresh every layer, 6-9% of the throughput at 64 clients (216-224 vs
  // 234-240 req/s; docs/serve.md), for +55-90 MB resident and the same growth after warm-up.
  mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, 32 * 1024 * 1024);
#endif
  // Not overwritten when set: the user's value wins.
  setenv("LRU_CACHE_CAPACITY", "16", 0);
  setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16", 0);
}

}  // namespace tsrunner::cli
