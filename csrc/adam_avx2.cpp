// AVX2 + FMA level: the kernels of level_body.h on 8 floats a register; the head and the tail use
// AVX's masked loads and stores (a lane mask in a vector register). Registered for CPUs with AVX2, FMA
// and F16C.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "dispatch.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

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
  static reg sub(reg a, reg b) { return _mm256_sub_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
  static reg div(reg a, reg b) { return _mm256_div_ps(a, b); }
  static reg sqrt(reg a) { return _mm256_sqrt_ps(a); }
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static void prefetch(const float* p) { _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T0); }

  // AdamW's double-precision steps (adamw_body.h): a register's 8 lanes widened exactly to doubles.
  struct wide {
    __m256d lo, hi;
  };
  static wide widen(reg x) {
    return {_mm256_cvtps_pd(_mm256_castps256_ps128(x)), _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1))};
  }
  static reg narrow(wide x) { return _mm256_set_m128(_mm256_cvtpd_ps(x.hi), _mm256_cvtpd_ps(x.lo)); }
  static wide add(wide a, wide b) { return {_mm256_add_pd(a.lo, b.lo), _mm256_add_pd(a.hi, b.hi)}; }
  static wide div(wide a, wide b) { return {_mm256_div_pd(a.lo, b.lo), _mm256_div_pd(a.hi, b.hi)}; }
  static wide sqrt(wide a) { return {_mm256_sqrt_pd(a.lo), _mm256_sqrt_pd(a.hi)}; }
  static wide fma(wide a, wide b, wide c) { return {_mm256_fmadd_pd(a.lo, b.lo, c.lo), _mm256_fmadd_pd(a.hi, b.hi, c.hi)}; }
  static reg where_same(reg a, reg b, reg x, reg y) {
    const __m256i same = _mm256_cmpeq_epi32(_mm256_castps_si256(a), _mm256_castps_si256(b));
    return _mm256_blendv_ps(y, x, _mm256_castsi256_ps(same));
  }

  // 16-bit parameters (adam_master_body.h): F16C for float16 (half.h's bits, denormals and NaNs
  // included), integer code for bfloat16.
  static reg load_f16(const std::uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static void store_f16(std::uint16_t* p, reg x) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
  }
  static reg load_bf16(const std::uint16_t* p) {
    const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
  }
  static void store_bf16(std::uint16_t* p, reg x) {  // half.h's float_to_bfloat16, 8 lanes
    const __m256i bits = _mm256_castps_si256(x);
    const __m256i high = _mm256_srli_epi32(bits, 16);
    const __m256i bias = _mm256_add_epi32(_mm256_and_si256(high, _mm256_set1_epi32(1)), _mm256_set1_epi32(0x7FFF));
    const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(bits, bias), 16);
    const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
    const __m256i out = _mm256_blendv_epi8(rounded, _mm256_or_si256(high, _mm256_set1_epi32(0x40)), nan);
    const __m256i halves = _mm256_packus_epi32(out, _mm256_setzero_si256());  // values fit 16 bits
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_castsi256_si128(_mm256_permute4x64_epi64(halves, 0x08)));
  }
  // The value rounded to the 16-bit type and widened back, in registers: store then load's bits.
  static reg round_f16(reg x) { return _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT)); }
  static reg round_bf16(reg x) {
    const __m256i bits = _mm256_castps_si256(x);
    const __m256i high = _mm256_set1_epi32(static_cast<int>(0xFFFF0000u));
    const __m256i bias = _mm256_add_epi32(_mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1)),
                                          _mm256_set1_epi32(0x7FFF));
    const __m256i rounded = _mm256_and_si256(_mm256_add_epi32(bits, bias), high);
    const __m256i quiet = _mm256_and_si256(_mm256_or_si256(bits, _mm256_set1_epi32(0x400000)), high);
    const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
    return _mm256_castsi256_ps(_mm256_blendv_epi8(rounded, quiet, nan));
  }
};

}  // namespace
}  // namespace avx2
}  // namespace mso

#define MSO_LEVEL avx2
#include "level_body.h"
#undef MSO_LEVEL

#pragma GCC pop_options

namespace mso::avx2 {
namespace {

bool cpu_has_avx2() {  // compiled for the baseline, like the registration: both run on every CPU
  __builtin_cpu_init();
  // F16C for the float16 master pass; every AVX2 CPU made has it.
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}

}  // namespace
}  // namespace mso::avx2

MSO_REGISTER_LEVEL(avx2, 1, cpu_has_avx2)
