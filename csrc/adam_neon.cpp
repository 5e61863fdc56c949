// NEON level (aarch64): the kernels of level_body.h on 4 floats a register. Advanced SIMD is part of
// ARMv8-A, so every aarch64 CPU runs it and the build needs no target flag; setup.py compiles this file
// only for aarch64. The head and the tail go through a zero-filled stack copy of the lanes that exist
// (NEON has no masked load or store), computed by the same instructions as whole registers.
//
// The bits are the x86 levels' because the driver (pass.h) fixes the FP environment for the pass:
// FPCR = 0 is round to nearest even, no flush to zero, NaNs propagated (not the default NaN) and IEEE
// half precision (not the alternative format), which is what vcvt below and vsqrt/vdiv/vfma need to
// round as F16C and AVX do.
#include <arm_neon.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "dispatch.h"

namespace mso {
namespace neon {
namespace {

struct Vec {
  using reg = float32x4_t;
  using mask = std::size_t;  // lanes [0, mask) are on
  static constexpr std::size_t kWidth = 4;

  static reg set1(float x) { return vdupq_n_f32(x); }
  static reg load(const float* p) { return vld1q_f32(p); }
  static reg load(const float* p, mask k) {  // never reads past lane k: p + k may be unmapped
    float lanes[kWidth] = {};
    std::memcpy(lanes, p, k * sizeof(float));
    return vld1q_f32(lanes);
  }
  static void store(float* p, reg x) { vst1q_f32(p, x); }
  static void store(float* p, reg x, mask k) {
    float lanes[kWidth];
    vst1q_f32(lanes, x);
    std::memcpy(p, lanes, k * sizeof(float));
  }
  // No non-temporal store in the NEON intrinsics (STNP is a pair store of its own): a plain one.
  static void stream(float* p, reg x) { vst1q_f32(p, x); }
  static void fence() {}
  static mask first(std::size_t count) { return count < kWidth ? count : kWidth; }
  static reg add(reg a, reg b) { return vaddq_f32(a, b); }
  static reg sub(reg a, reg b) { return vsubq_f32(a, b); }
  static reg mul(reg a, reg b) { return vmulq_f32(a, b); }
  static reg div(reg a, reg b) { return vdivq_f32(a, b); }
  static reg sqrt(reg a) { return vsqrtq_f32(a); }
  static reg fma(reg a, reg b, reg c) { return vfmaq_f32(c, a, b); }  // c + a * b, rounded once
  static void prefetch(const float* p) { __builtin_prefetch(p, 0, 3); }

  // AdamW's double-precision steps (adamw_body.h): a register's 4 lanes widened exactly to doubles, two
  // to a register (FCVTL/FCVTL2); narrow rounds to nearest (FCVTN/FCVTN2), as the other levels do.
  struct wide {
    float64x2_t lo, hi;
  };
  static wide widen(reg x) { return {vcvt_f64_f32(vget_low_f32(x)), vcvt_high_f64_f32(x)}; }
  static reg narrow(wide x) { return vcvt_high_f32_f64(vcvt_f32_f64(x.lo), x.hi); }
  static wide add(wide a, wide b) { return {vaddq_f64(a.lo, b.lo), vaddq_f64(a.hi, b.hi)}; }
  static wide div(wide a, wide b) { return {vdivq_f64(a.lo, b.lo), vdivq_f64(a.hi, b.hi)}; }
  static wide sqrt(wide a) { return {vsqrtq_f64(a.lo), vsqrtq_f64(a.hi)}; }
  static wide fma(wide a, wide b, wide c) { return {vfmaq_f64(c.lo, a.lo, b.lo), vfmaq_f64(c.hi, a.hi, b.hi)}; }
  static reg where_same(reg a, reg b, reg x, reg y) {
    return vbslq_f32(vceqq_u32(vreinterpretq_u32_f32(a), vreinterpretq_u32_f32(b)), x, y);
  }

  // 16-bit parameters (adam_master_body.h): ARMv8's FCVTL/FCVTN for float16 (half.h's bits, denormals,
  // overflow and NaNs included, under the pass's FPCR; tests/masters/test_kernel.py checks all 65536
  // halves and the roundings), integer code for bfloat16 as on x86 (BFCVT is not ARMv8.0).
  static reg load_f16(const std::uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
  static void store_f16(std::uint16_t* p, reg x) { vst1_u16(p, vreinterpret_u16_f16(vcvt_f16_f32(x))); }
  static reg load_bf16(const std::uint16_t* p) {
    return vreinterpretq_f32_u32(vshlq_n_u32(vmovl_u16(vld1_u16(p)), 16));
  }
  static void store_bf16(std::uint16_t* p, reg x) {  // half.h's float_to_bfloat16, 4 lanes
    const uint32x4_t bits = vreinterpretq_u32_f32(x);
    const uint32x4_t high = vshrq_n_u32(bits, 16);
    const uint32x4_t bias = vaddq_u32(vandq_u32(high, vdupq_n_u32(1)), vdupq_n_u32(0x7FFF));
    const uint32x4_t rounded = vshrq_n_u32(vaddq_u32(bits, bias), 16);
    const uint32x4_t number = vceqq_f32(x, x);  // all ones except in NaN lanes
    const uint32x4_t out = vbslq_u32(number, rounded, vorrq_u32(high, vdupq_n_u32(0x40)));
    vst1_u16(p, vmovn_u32(out));
  }
  // The value rounded to the 16-bit type and widened back, in registers: store then load's bits.
  static reg round_f16(reg x) { return vcvt_f32_f16(vcvt_f16_f32(x)); }
  static reg round_bf16(reg x) {
    const uint32x4_t bits = vreinterpretq_u32_f32(x);
    const uint32x4_t top = vdupq_n_u32(0xFFFF0000u);
    const uint32x4_t bias = vaddq_u32(vandq_u32(vshrq_n_u32(bits, 16), vdupq_n_u32(1)), vdupq_n_u32(0x7FFF));
    const uint32x4_t rounded = vandq_u32(vaddq_u32(bits, bias), top);
    const uint32x4_t quiet = vandq_u32(vorrq_u32(bits, vdupq_n_u32(0x400000)), top);
    return vreinterpretq_f32_u32(vbslq_u32(vceqq_f32(x, x), rounded, quiet));
  }
};

}  // namespace
}  // namespace neon
}  // namespace mso

#define MSO_LEVEL neon
#include "level_body.h"
#undef MSO_LEVEL

namespace mso::neon {
namespace {

bool every_aarch64_cpu() { return true; }  // Advanced SIMD is mandatory in ARMv8-A

}  // namespace
}  // namespace mso::neon

MSO_REGISTER_LEVEL(neon, 1, every_aarch64_cpu)
