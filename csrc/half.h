// float16 and bfloat16 <-> float32 in integer arithmetic, the bits every level must produce.
// The vector levels use F16C / AVX-512 conversions for float16 (checked bit for bit against these,
// denormals, infinities and NaNs included: tests/masters/test_kernel.py) and integer code for bfloat16,
// because AVX512_BF16's vcvtneps2bf16 flushes denormal inputs to zero.
#pragma once

#include <cstdint>
#include <cstring>

namespace mso {

inline std::uint32_t float_bits(float f) {
  std::uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  return x;
}

inline float bits_float(std::uint32_t x) {
  float f;
  std::memcpy(&f, &x, sizeof f);
  return f;
}

// Exact. A NaN keeps its payload and comes out quiet, as vcvtph2ps makes it.
inline float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1Fu;
  const std::uint32_t mant = h & 0x3FFu;
  if (exp == 0x1F) return bits_float(sign | 0x7F800000u | (mant << 13) | (mant != 0 ? 0x400000u : 0u));
  if (exp != 0) return bits_float(sign | ((exp + 112) << 23) | (mant << 13));
  if (mant == 0) return bits_float(sign);
  const int top = 31 - __builtin_clz(mant);  // a denormal half is mant * 2^-24: normalise it
  return bits_float(sign | static_cast<std::uint32_t>(top + 103) << 23 | ((mant << (23 - top)) & 0x7FFFFFu));
}

// Rounds to nearest even; overflow gives infinity; a NaN comes out quiet with the top of its payload,
// as vcvtps2ph does. Never reads MXCSR, so FTZ/DAZ cannot change it.
inline std::uint16_t float_to_half(float f) {
  const std::uint32_t x = float_bits(f);
  const std::uint32_t sign = (x >> 16) & 0x8000u;
  const std::uint32_t a = x & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return static_cast<std::uint16_t>(sign | 0x7E00u | ((a >> 13) & 0x3FFu));
  if (a >= 0x477FF000u) return static_cast<std::uint16_t>(sign | 0x7C00u);  // >= 65520: infinity
  if (a >= 0x38800000u) {  // a normal half: rebias the exponent, round the 13 dropped bits
    const std::uint32_t r = a - 0x38000000u;
    return static_cast<std::uint16_t>(sign | ((r + 0x0FFFu + ((r >> 13) & 1u)) >> 13));
  }
  if (a <= 0x33000000u) return static_cast<std::uint16_t>(sign);  // <= 2^-25 (the tie goes to even 0)
  const std::uint32_t mant = (a & 0x7FFFFFu) | 0x800000u;       // value = mant * 2^(exp-150)
  const std::uint32_t shift = 126u - (a >> 23);                  // to units of 2^-24: 14..24
  std::uint32_t q = mant >> shift;
  const std::uint32_t rem = mant & ((1u << shift) - 1u);
  const std::uint32_t halfway = 1u << (shift - 1);
  if (rem > halfway || (rem == halfway && (q & 1u))) ++q;  // may carry into the smallest normal: right
  return static_cast<std::uint16_t>(sign | q);
}

// Exact: bfloat16 is the top half of a float32 (a NaN passes through unchanged, signalling or not).
inline float bfloat16_to_float(std::uint16_t b) { return bits_float(static_cast<std::uint32_t>(b) << 16); }

// Rounds to nearest even; overflow gives infinity; a NaN stays a NaN (quietened, top of its payload).
inline std::uint16_t float_to_bfloat16(float f) {
  const std::uint32_t x = float_bits(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<std::uint16_t>((x >> 16) | 0x40u);
  return static_cast<std::uint16_t>((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}

}  // namespace mso
