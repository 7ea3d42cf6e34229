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

}  // namespace tsrunner::cli
