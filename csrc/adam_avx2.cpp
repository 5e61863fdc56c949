// AVX2 + FMA level: 8 floats a step; the tail and the alignment head use masked loads and stores,
// so there is no scalar remainder and every element goes through the same instructions.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "adam.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma")

namespace mso {
namespace {

struct Consts {
  __m256 beta1, beta2, c1, c2, neg_lr, eps;
};

template <bool kNesterov>
inline __m256 step(const Consts& k, __m256 g, __m256& m, __m256& v) {
  m = _mm256_fmadd_ps(m, k.beta1, _mm256_mul_ps(k.c1, g));
  v = _mm256_fmadd_ps(v, k.beta2, _mm256_mul_ps(_mm256_mul_ps(k.c2, g), g));
  const auto num = kNesterov ? _mm256_fmadd_ps(m, k.beta1, _mm256_mul_ps(k.c1, g)) : m;
  return _mm256_div_ps(_mm256_mul_ps(k.neg_lr, num), _mm256_add_ps(_mm256_sqrt_ps(v), k.eps));
}

// Lanes [0, count) on, the rest off; count in [1, 7].
inline __m256i lanes(std::size_t count) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

template <bool kNesterov, Output kOut>
inline void masked(const Consts& k, float* m, float* v, const float* g, float* out, __m256i mask) {
  __m256 mv = _mm256_maskload_ps(m, mask);
  __m256 vv = _mm256_maskload_ps(v, mask);
  __m256 dv = step<kNesterov>(k, _mm256_maskload_ps(g, mask), mv, vv);
  if (kOut == Output::kApply) dv = _mm256_add_ps(_mm256_maskload_ps(out, mask), dv);
  _mm256_maskstore_ps(m, mask, mv);
  _mm256_maskstore_ps(v, mask, vv);
  _mm256_maskstore_ps(out, mask, dv);
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
  if (kOut == Output::kStream) {  // bring the delta to a 32-byte boundary first
    const std::size_t head = ((32 - (reinterpret_cast<std::uintptr_t>(out) & 31)) & 31) / sizeof(float);
    if (head != 0 && head <= n) {
      masked<kNesterov, kOut>(k, m, v, g, out, lanes(head));
      i = head;
    }
  }
  const bool far = n >= kPrefetchMin;
  for (; i + 8 <= n; i += 8) {
    if (far) prefetch<kOut>(m + i, v + i, g + i, out + i);
    __m256 mv = _mm256_loadu_ps(m + i);
    __m256 vv = _mm256_loadu_ps(v + i);
    const __m256 dv = step<kNesterov>(k, _mm256_loadu_ps(g + i), mv, vv);
    _mm256_storeu_ps(m + i, mv);
    _mm256_storeu_ps(v + i, vv);
    if (kOut == Output::kStream) {
      _mm256_stream_ps(out + i, dv);
    } else if (kOut == Output::kApply) {
      _mm256_storeu_ps(out + i, _mm256_add_ps(_mm256_loadu_ps(out + i), dv));
    } else {
      _mm256_storeu_ps(out + i, dv);
    }
  }
  if (i < n) masked<kNesterov, kOut>(k, m + i, v + i, g + i, out + i, lanes(n - i));
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

void adam_step_avx2(float* m, float* v, const float* grad, float* out, std::size_t n, const AdamCoeffs& c,
                    bool nesterov, Output output) {
  const Consts k{_mm256_set1_ps(c.beta1), _mm256_set1_ps(c.beta2), _mm256_set1_ps(c.one_minus_beta1),
                 _mm256_set1_ps(c.one_minus_beta2), _mm256_set1_ps(c.neg_lr), _mm256_set1_ps(c.eps)};
  nesterov ? dispatch<true>(m, v, grad, out, n, k, output) : dispatch<false>(m, v, grad, out, n, k, output);
}

}  // namespace mso

#pragma GCC pop_options
