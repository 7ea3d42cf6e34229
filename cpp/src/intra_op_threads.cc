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

namespace {

// LibTorch sets a thread's count to the process default (at::set_num_threads) the first time
// the thread asks for it, through the inline at::internal::lazy_init_num_threads and its
// thread_local flag. Built with hidden visibility, this library has its own copy of that flag
// (the at::parallel_for of its kernels reads it), apart from LibTorch's (at::get_num_threads,
// LibTorch's operators): both must be past their first call before a count is set on a thread,
// or the first call of either resets it (a tsrun serve worker's --threads 2 ran on one thread).
void init_both_thread_counts() {
  at::internal::lazy_init_num_threads();
  (void)at::get_num_threads();
}

}  // namespace

int intra_op_threads() {
  init_both_thread_counts();
  return omp_get_max_threads();
}

void set_intra_op_threads(int threads) {
  init_both_thread_counts();
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
