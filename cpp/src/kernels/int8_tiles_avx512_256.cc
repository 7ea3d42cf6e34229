// The int8 GEMM's 256-bit tiles (kernels/int8_tiles256.h) with EVEX VPDPBUSD: the AVX-VNNI
// kernel's code, differing only in the instruction's encoding, run natively on AVX-512 CPUs
// (TSR_TEST_INT8_KERNEL=avx_vnni) so the tests and benchmarks exercise it there.
#include "kernels/int8_tiles.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define TSR_INT8_256_TARGET "avx2,fma,avx512f,avx512vl,avx512vnni"
#include "kernels/int8_tiles256.h"

namespace tsrunner::detail {
namespace {

struct EvexDot {
  __attribute__((target(TSR_INT8_256_TARGET), always_inline)) static __m256i dot(__m256i sum,
                                                                                 __m256i u8,
                                                                                 __m256i s8) {
    return _mm256_dpbusd_epi32(sum, u8, s8);
  }
};

}  // namespace

void run_int8_tiles_avx512_vnni_256(const uint8_t* packed, int64_t row, int64_t row_end,
                                    int64_t groups, const int8_t* panels, int64_t first_block,
                                    int64_t last_block, const Int8Epilogue& e) {
  run_tiles256<EvexDot>(packed, row, row_end, groups, panels, first_block, last_block, e);
}

}  // namespace tsrunner::detail
#endif
