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
  // Activations of every batch over 1 MiB are mmapped: a page-fault cost per batch that is
  // small next to a batch's GEMMs, instead of heap that stays at its most fragmented peak.
  mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, 32 * 1024 * 1024);
#endif
  // Not overwritten when set: the user's value wins.
  setenv("LRU_CACHE_CAPACITY", "16", 0);
  setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16", 0);
}

}  // namespace tsrunner::cli
