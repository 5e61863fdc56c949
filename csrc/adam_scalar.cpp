// Portable level: the kernels of level_body.h one float at a time, on every CPU. std::fma, sqrt and
// division are correctly rounded, like their vector instructions, so this level gives the vector levels'
// bits (at the x86-64 baseline std::fma is a library call, which is why this level is slow).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "dispatch.h"
#include "half.h"

namespace mso {
namespace scalar {
namespace {

struct Vec {
  using reg = float;
  using mask = bool;
  static constexpr std::size_t kWidth = 1;  // no head and no tail: every element is a whole register

  static reg set1(float x) { return x; }
  static reg load(const float* p) {  // memcpy: the lab's probe reads 16-bit streams through float*
    reg x;
    std::memcpy(&x, p, sizeof x);
    return x;
  }
  static reg load(const float* p, mask k) { return k ? *p : 0.0f; }
  static void store(float* p, reg x) { std::memcpy(p, &x, sizeof x); }
  static void store(float* p, reg x, mask k) {
    if (k) *p = x;
  }
  static void stream(float* p, reg x) { *p = x; }  // no streaming store: a plain one
  static void fence() {}
  static mask first(std::size_t count) { return count > 0; }
  static reg add(reg a, reg b) { return a + b; }
  static reg sub(reg a, reg b) { return a - b; }
  static reg mul(reg a, reg b) { return a * b; }
  static reg div(reg a, reg b) { return a / b; }
  static reg sqrt(reg a) { return std::sqrt(a); }
  static reg fma(reg a, reg b, reg c) { return std::fma(a, b, c); }
  static void prefetch(const float*) {}

  // AdamW's double-precision steps (adamw_body.h): one lane, widened exactly.
  using wide = double;
  static wide widen(reg x) { return x; }
  static reg narrow(wide x) { return static_cast<float>(x); }
  static wide add(wide a, wide b) { return a + b; }
  static wide div(wide a, wide b) { return a / b; }
  static wide sqrt(wide a) { return std::sqrt(a); }
  static wide fma(wide a, wide b, wide c) { return std::fma(a, b, c); }
  static reg where_same(reg a, reg b, reg x, reg y) { return float_bits(a) == float_bits(b) ? x : y; }

  // 16-bit parameters (adam_master_body.h): half.h's integer conversions, the bits of the vector levels.
  static reg load_f16(const std::uint16_t* p) { return half_to_float(*p); }
  static void store_f16(std::uint16_t* p, reg x) { *p = float_to_half(x); }
  static reg load_bf16(const std::uint16_t* p) { return bfloat16_to_float(*p); }
  static void store_bf16(std::uint16_t* p, reg x) { *p = float_to_bfloat16(x); }
  static reg round_f16(reg x) { return half_to_float(float_to_half(x)); }
  static reg round_bf16(reg x) { return bfloat16_to_float(float_to_bfloat16(x)); }
};

}  // namespace
}  // namespace scalar
}  // namespace mso

#define MSO_LEVEL scalar
#include "level_body.h"
#undef MSO_LEVEL

namespace mso::scalar {
namespace {

bool every_cpu() { return true; }

}  // namespace
}  // namespace mso::scalar

MSO_REGISTER_LEVEL(scalar, 0, every_cpu)
