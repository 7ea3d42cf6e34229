#include "intra_op_threads.h"

#include <ATen/Parallel.h>
#include <omp.h>

namespace tsrunner::detail {

int intra_op_threads() {
  at::internal::lazy_init_num_threads();
  return omp_get_max_threads();
}

void set_intra_op_threads(int threads) {
  at::internal::lazy_init_num_threads();
  omp_set_num_threads(threads);
}

ScopedIntraOpThreads::ScopedIntraOpThreads(int threads) {
  if (threads <= 0) return;
  const int current = intra_op_threads();
  if (current == threads) return;
  omp_set_num_threads(threads);
  previous_ = current;
}

ScopedIntraOpThreads::~ScopedIntraOpThreads() {
  if (previous_ > 0) omp_set_num_threads(previous_);
}

}  // namespace tsrunner::detail
