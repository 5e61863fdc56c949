// AVX2 + FMA level: the body of adam_body.h on 8 floats a register; the head and the tail use
// AVX's masked loads and stores (a lane mask in a vector register).
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "adam.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma")

namespace mso {
namespace avx2 {
namespace {

struct Vec {
  using reg = __m256;
  using mask = __m256i;
  static constexpr std::size_t kWidth = 8;

  static reg set1(float x) { return _mm256_set1_ps(x); }
  static reg load(const float* p) { return _mm256_loadu_ps(p); }
  static reg load(const float* p, mask k) { return _mm256_maskload_ps(p, k); }
  static void store(float* p, reg x) { _mm256_storeu_ps(p, x); }
  static void store(float* p, reg x, mask k) { _mm256_maskstore_ps(p, k, x); }
  static void stream(float* p, reg x) { _mm256_stream_ps(p, x); }
  static void fence() { _mm_sfence(); }
  static mask first(std::size_t count) {  // lane i is on when i < count
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
  static reg div(reg a, reg b) { return _mm256_div_ps(a, b); }
  static reg sqrt(reg a) { return _mm256_sqrt_ps(a); }
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static void prefetch(const float* p) { _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T0); }
};

}  // namespace
}  // namespace avx2
}  // namespace mso

#define MSO_LEVEL avx2
#include "adam_body.h"
#undef MSO_LEVEL

#pragma GCC pop_options
