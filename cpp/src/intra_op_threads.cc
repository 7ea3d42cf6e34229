#include "intra_op_threads.h"

#include <ATen/Parallel.h>

// OpenMP's API, resolved at run time from the libgomp LibTorch loads (as the kernels' GOMP_*
// entry points are, cpp/CMakeLists.txt): declared here so that no compiler's omp.h is needed.
extern "C" {
int omp_get_max_threads();
void omp_set_num_threads(int threads);
// MKL keeps a per-thread count of its own, which at::set_num_threads sets (torch.set_num_threads
// in Python): where it is set it wins over OpenMP's for MKL's kernels (sgemm of the default
// engine, LibTorch's fallbacks). MKL_Set_Num_Threads_Local is the C entry point that
// mkl_service.h's mkl_set_num_threads_local names (the exported lower-case symbol is the Fortran
// one, which takes a pointer). Weak: LibTorch builds without MKL (aarch64) do not have it.
int MKL_Set_Num_Threads_Local(int threads) __attribute__((weak));
}

namespace tsrunner::detail {

int intra_op_threads() {
  at::internal::lazy_init_num_threads();
  return omp_get_max_threads();
}

void set_intra_op_threads(int threads) {
  at::internal::lazy_init_num_threads();
  omp_set_num_threads(threads);
  if (MKL_Set_Num_Threads_Local != nullptr) (void)MKL_Set_Num_Threads_Local(threads);
}

ScopedIntraOpThreads::ScopedIntraOpThreads(int threads) {
  if (threads <= 0) return;
  previous_ = intra_op_threads();
  omp_set_num_threads(threads);
  // Returns the thread's previous MKL setting (0: none, MKL follows OpenMP).
  if (MKL_Set_Num_Threads_Local != nullptr) previous_mkl_ = MKL_Set_Num_Threads_Local(threads);
}

ScopedIntraOpThreads::~ScopedIntraOpThreads() {
  if (previous_ <= 0) return;
  omp_set_num_threads(previous_);
  if (MKL_Set_Num_Threads_Local != nullptr) (void)MKL_Set_Num_Threads_Local(previous_mkl_);
}

}  // namespace tsrunner::detail
