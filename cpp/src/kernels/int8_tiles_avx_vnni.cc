// The int8 GEMM's 256-bit tiles with VEX VPDPBUSD: CPUs with AVX-VNNI and no AVX512-VNNI
// (Alder Lake and later Intel clients, Sierra Forest, AMD Zen 5 desktop parts).
#include "kernels/int8_tiles.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define TSR_INT8_256_TARGET "avx2,fma,avxvnni"
#include "kernels/int8_tiles256.h"

namespace tsrunner::detail {
namespace {

struct VexDot {
  __attribute__((target(TSR_INT8_256_TARGET), always_inline)) static __m256i dot(__m256i sum,
                                                                                 __m256i u8,
                                                                                 __m256i s8) {
    return _mm256_dpbusd_avx_epi32(sum, u8, s8);
  }
};

}  // namespace

void run_int8_tiles_avx_vnni(const uint8_t* packed, int64_t row, int64_t row_end, int64_t groups,
                             const int8_t* panels, int64_t first_block, int64_t last_block,
                             const Int8Epilogue& e) {
  run_tiles256<VexDot>(packed, row, row_end, groups, panels, first_block, last_block, e);
}

}  // namespace tsrunner::detail
#endif
