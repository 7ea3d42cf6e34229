#pragma once

namespace tsrunner::detail {

// OpenMP keeps the intra-op thread count per thread, and LibTorch's operators, oneDNN and
// tsrunner's own kernels all size their parallel regions by the calling thread's count (MKL by
// its own per-thread count where one is set, else by OpenMP's; both are set here). These
// touch the calling thread's counts only: at::set_num_threads would also change the count every
// new thread starts with (so one runner's setting would leak into another's) and clear oneDNN's
// cached primitives on every change.

// The calling thread's count (after LibTorch's lazy per-thread initialisation, so that a later
// first operator does not reset what is set here).
int intra_op_threads();
// Sets the calling thread's count; `threads` must be positive.
void set_intra_op_threads(int threads);

// The calling thread runs with `threads` intra-op threads while the guard lives, and gets its
// own count back afterwards. 0 leaves the count as it is.
class ScopedIntraOpThreads {
 public:
  explicit ScopedIntraOpThreads(int threads);
  ~ScopedIntraOpThreads();
  ScopedIntraOpThreads(const ScopedIntraOpThreads&) = delete;
  ScopedIntraOpThreads& operator=(const ScopedIntraOpThreads&) = delete;

 private:
  int previous_ = 0;      // the OpenMP count to restore; 0: nothing to restore
  int previous_mkl_ = 0;  // MKL's per-thread count to restore (0: unset)
};

}  // namespace tsrunner::detail
