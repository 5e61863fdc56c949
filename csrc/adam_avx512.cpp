// AVX-512 level: 16 floats a step; the tail and the alignment head use masked loads and stores,
// so there is no scalar remainder and every element goes through the same instructions.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "adam.h"

#pragma GCC push_options
#pragma GCC target("avx512f")
// GCC 12 warns inside its own masked-load intrinsics (the undefined pass-through lanes it zeroes).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace mso {
namespace {

struct Consts {
  __m512 beta1, beta2, c1, c2, neg_lr, eps;
};

template <bool kNesterov>
inline __m512 step(const Consts& k, __m512 g, __m512& m, __m512& v) {
  m = _mm512_fmadd_ps(m, k.beta1, _mm512_mul_ps(k.c1, g));
  v = _mm512_fmadd_ps(v, k.beta2, _mm512_mul_ps(_mm512_mul_ps(k.c2, g), g));
  const auto num = kNesterov ? _mm512_fmadd_ps(m, k.beta1, _mm512_mul_ps(k.c1, g)) : m;
  return _mm512_div_ps(_mm512_mul_ps(k.neg_lr, num), _mm512_add_ps(_mm512_sqrt_ps(v), k.eps));
}

template <bool kNesterov, Output kOut>
inline void masked(const Consts& k, float* m, float* v, const float* g, float* out, __mmask16 mask) {
  __m512 mv = _mm512_maskz_loadu_ps(mask, m);
  __m512 vv = _mm512_maskz_loadu_ps(mask, v);
  __m512 dv = step<kNesterov>(k, _mm512_maskz_loadu_ps(mask, g), mv, vv);
  if (kOut == Output::kApply) dv = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, out), dv);
  _mm512_mask_storeu_ps(m, mask, mv);
  _mm512_mask_storeu_ps(v, mask, vv);
  _mm512_mask_storeu_ps(out, mask, dv);
}

template <Output kOut>
inline void prefetch(const float* m, const float* v, const float* g, const float* out) {
  _mm_prefetch(reinterpret_cast<const char*>(g + kPrefetchAhead), _MM_HINT_T0);
  _mm_prefetch(reinterpret_cast<const char*>(m + kPrefetchAhead), _MM_HINT_T0);
  _mm_prefetch(reinterpret_cast<const char*>(v + kPrefetchAhead), _MM_HINT_T0);
  if (kOut == Output::kApply) _mm_prefetch(reinterpret_cast<const char*>(out + kPrefetchAhead), _MM_HINT_T0);
}

template <bool kNesterov, Output kOut>
void run(float* m, float* v, const float* g, float* out, std::size_t n, const Consts& k) {
  std::size_t i = 0;
  if (kOut == Output::kStream) {  // bring the delta to a 64-byte boundary first
    const std::size_t head = ((64 - (reinterpret_cast<std::uintptr_t>(out) & 63)) & 63) / sizeof(float);
    if (head != 0 && head <= n) {
      masked<kNesterov, kOut>(k, m, v, g, out, static_cast<__mmask16>((1u << head) - 1));
      i = head;
    }
  }
  const bool far = n >= kPrefetchMin;
  for (; i + 16 <= n; i += 16) {
    if (far) prefetch<kOut>(m + i, v + i, g + i, out + i);
    __m512 mv = _mm512_loadu_ps(m + i);
    __m512 vv = _mm512_loadu_ps(v + i);
    const __m512 dv = step<kNesterov>(k, _mm512_loadu_ps(g + i), mv, vv);
    _mm512_storeu_ps(m + i, mv);
    _mm512_storeu_ps(v + i, vv);
    if (kOut == Output::kStream) {
      _mm512_stream_ps(out + i, dv);
    } else if (kOut == Output::kApply) {
      _mm512_storeu_ps(out + i, _mm512_add_ps(_mm512_loadu_ps(out + i), dv));
    } else {
      _mm512_storeu_ps(out + i, dv);
    }
  }
  if (i < n) masked<kNesterov, kOut>(k, m + i, v + i, g + i, out + i, static_cast<__mmask16>((1u << (n - i)) - 1));
  if (kOut == Output::kStream) _mm_sfence();
}

template <bool kNesterov>
void dispatch(float* m, float* v, const float* g, float* out, std::size_t n, const Consts& k, Output output) {
  switch (output) {
    case Output::kStream: return run<kNesterov, Output::kStream>(m, v, g, out, n, k);
    case Output::kApply: return run<kNesterov, Output::kApply>(m, v, g, out, n, k);
    default: return run<kNesterov, Output::kStore>(m, v, g, out, n, k);
  }
}

}  // namespace

void adam_step_avx512(float* m, float* v, const float* grad, float* out, std::size_t n, const AdamCoeffs& c,
                      bool nesterov, Output output) {
  const Consts k{_mm512_set1_ps(c.beta1), _mm512_set1_ps(c.beta2), _mm512_set1_ps(c.one_minus_beta1),
                 _mm512_set1_ps(c.one_minus_beta2), _mm512_set1_ps(c.neg_lr), _mm512_set1_ps(c.eps)};
  nesterov ? dispatch<true>(m, v, grad, out, n, k, output) : dispatch<false>(m, v, grad, out, n, k, output);
}

}  // namespace mso

#pragma GCC pop_options
