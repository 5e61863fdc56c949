// AVX-512 level: the kernels of level_body.h on 16 floats a register, with mask registers for the
// head and the tail; registered for CPUs with AVX512F.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "dispatch.h"

#pragma GCC push_options
#pragma GCC target("avx512f")
// GCC 12 warns inside its own intrinsics (the undefined pass-through lanes of masked loads and of the
// 16-bit conversions, which the intrinsics overwrite).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

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
  static reg sub(reg a, reg b) { return _mm512_sub_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
  static reg div(reg a, reg b) { return _mm512_div_ps(a, b); }
  static reg sqrt(reg a) { return _mm512_sqrt_ps(a); }
  static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static void prefetch(const float* p) { _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T0); }

  // AdamW's double-precision steps (adamw_body.h): a register's 16 lanes widened exactly to doubles
  // (AVX512F alone: the halves move as 4 doubles' worth of bits).
  struct wide {
    __m512d lo, hi;
  };
  static wide widen(reg x) {
    const __m256 high = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1));
    return {_mm512_cvtps_pd(_mm512_castps512_ps256(x)), _mm512_cvtps_pd(high)};
  }
  static reg narrow(wide x) {
    const __m512d low = _mm512_castps_pd(_mm512_castps256_ps512(_mm512_cvtpd_ps(x.lo)));
    return _mm512_castpd_ps(_mm512_insertf64x4(low, _mm256_castps_pd(_mm512_cvtpd_ps(x.hi)), 1));
  }
  static wide add(wide a, wide b) { return {_mm512_add_pd(a.lo, b.lo), _mm512_add_pd(a.hi, b.hi)}; }
  static wide div(wide a, wide b) { return {_mm512_div_pd(a.lo, b.lo), _mm512_div_pd(a.hi, b.hi)}; }
  static wide sqrt(wide a) { return {_mm512_sqrt_pd(a.lo), _mm512_sqrt_pd(a.hi)}; }
  static wide fma(wide a, wide b, wide c) { return {_mm512_fmadd_pd(a.lo, b.lo, c.lo), _mm512_fmadd_pd(a.hi, b.hi, c.hi)}; }

  static reg where_same(reg a, reg b, reg x, reg y) {
    return _mm512_mask_blend_ps(_mm512_cmpeq_epi32_mask(_mm512_castps_si512(a), _mm512_castps_si512(b)), y, x);
  }

  // 16-bit parameters (adam_master_body.h). vcvtph2ps/vcvtps2ph give half.h's bits (denormals, NaNs
  // and all); bfloat16 is integer code, because vcvtneps2bf16 flushes denormal inputs to zero.
  static reg load_f16(const std::uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  static void store_f16(std::uint16_t* p, reg x) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  static reg load_bf16(const std::uint16_t* p) {
    const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
  }
  static void store_bf16(std::uint16_t* p, reg x) {  // half.h's float_to_bfloat16, 16 lanes
    const __m512i bits = _mm512_castps_si512(x);
    const __m512i high = _mm512_srli_epi32(bits, 16);
    const __m512i bias = _mm512_add_epi32(_mm512_and_si512(high, _mm512_set1_epi32(1)), _mm512_set1_epi32(0x7FFF));
    const __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(bits, bias), 16);
    const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    const __m512i out = _mm512_mask_or_epi32(rounded, nan, high, _mm512_set1_epi32(0x40));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(out));
  }
  // The value rounded to the 16-bit type and widened back, in registers: store then load's bits.
  static reg round_f16(reg x) {
    return _mm512_cvtph_ps(_mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  static reg round_bf16(reg x) {
    const __m512i bits = _mm512_castps_si512(x);
    const __m512i high = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
    const __m512i bias = _mm512_add_epi32(_mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1)),
                                          _mm512_set1_epi32(0x7FFF));
    const __m512i rounded = _mm512_and_si512(_mm512_add_epi32(bits, bias), high);
    const __m512i quiet = _mm512_and_si512(_mm512_or_si512(bits, _mm512_set1_epi32(0x400000)), high);
    return _mm512_castsi512_ps(_mm512_mask_blend_epi32(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), rounded, quiet));
  }
};

}  // namespace
}  // namespace avx512
}  // namespace mso

#define MSO_LEVEL avx512
#include "level_body.h"
#undef MSO_LEVEL

#pragma GCC diagnostic pop
#pragma GCC pop_options

namespace mso::avx512 {
namespace {

bool cpu_has_avx512() {  // compiled for the baseline, like the registration: both run on every CPU
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f");
}

}  // namespace
}  // namespace mso::avx512

MSO_REGISTER_LEVEL(avx512, 2, cpu_has_avx512)
