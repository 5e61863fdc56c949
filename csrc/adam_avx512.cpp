// AVX-512 level: the body of adam_body.h on 16 floats a register, with mask registers for the head
// and the tail.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "adam.h"

#pragma GCC push_options
#pragma GCC target("avx512f")
// GCC 12 warns inside its own masked-load intrinsics (the undefined pass-through lanes it zeroes).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace mso {
namespace avx512 {
namespace {

struct Vec {
  using reg = __m512;
  using mask = __mmask16;
  static constexpr std::size_t kWidth = 16;

  static reg set1(float x) { return _mm512_set1_ps(x); }
  static reg load(const float* p) { return _mm512_loadu_ps(p); }
  static reg load(const float* p, mask k) { return _mm512_maskz_loadu_ps(k, p); }
  static void store(float* p, reg x) { _mm512_storeu_ps(p, x); }
  static void store(float* p, reg x, mask k) { _mm512_mask_storeu_ps(p, k, x); }
  static void stream(float* p, reg x) { _mm512_stream_ps(p, x); }
  static void fence() { _mm_sfence(); }
  static mask first(std::size_t count) { return static_cast<mask>((1u << count) - 1); }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
  static reg div(reg a, reg b) { return _mm512_div_ps(a, b); }
  static reg sqrt(reg a) { return _mm512_sqrt_ps(a); }
  static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static void prefetch(const float* p) { _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T0); }
};

}  // namespace
}  // namespace avx512
}  // namespace mso

#define MSO_LEVEL avx512
#include "adam_body.h"
#undef MSO_LEVEL

#pragma GCC diagnostic pop
#pragma GCC pop_options
