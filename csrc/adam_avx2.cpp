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

template <bool kNesterov>
inline void masked(const Consts& k, float* m, float* v, const float* g, float* d, __m256i mask) {
  __m256 mv = _mm256_maskload_ps(m, mask);
  __m256 vv = _mm256_maskload_ps(v, mask);
  const __m256 dv = step<kNesterov>(k, _mm256_maskload_ps(g, mask), mv, vv);
  _mm256_maskstore_ps(m, mask, mv);
  _mm256_maskstore_ps(v, mask, vv);
  _mm256_maskstore_ps(d, mask, dv);
}

template <bool kNesterov, bool kStream>
void run(float* m, float* v, const float* g, float* d, std::size_t n, const Consts& k) {
  std::size_t i = 0;
  if (kStream) {  // bring delta to a 32-byte boundary first
    const std::size_t head = ((32 - (reinterpret_cast<std::uintptr_t>(d) & 31)) & 31) / sizeof(float);
    if (head != 0 && head <= n) {
      masked<kNesterov>(k, m, v, g, d, lanes(head));
      i = head;
    }
  }
  for (; i + 8 <= n; i += 8) {
    __m256 mv = _mm256_loadu_ps(m + i);
    __m256 vv = _mm256_loadu_ps(v + i);
    const __m256 dv = step<kNesterov>(k, _mm256_loadu_ps(g + i), mv, vv);
    _mm256_storeu_ps(m + i, mv);
    _mm256_storeu_ps(v + i, vv);
    if (kStream) {
      _mm256_stream_ps(d + i, dv);
    } else {
      _mm256_storeu_ps(d + i, dv);
    }
  }
  if (i < n) masked<kNesterov>(k, m + i, v + i, g + i, d + i, lanes(n - i));
  if (kStream) _mm_sfence();
}

}  // namespace

void adam_step_avx2(float* m, float* v, const float* grad, float* delta, std::size_t n,
                    const AdamCoeffs& c, bool nesterov, bool stream) {
  const Consts k{_mm256_set1_ps(c.beta1), _mm256_set1_ps(c.beta2), _mm256_set1_ps(c.one_minus_beta1),
                 _mm256_set1_ps(c.one_minus_beta2), _mm256_set1_ps(c.neg_lr), _mm256_set1_ps(c.eps)};
  if (nesterov) {
    stream ? run<true, true>(m, v, grad, delta, n, k) : run<true, false>(m, v, grad, delta, n, k);
  } else {
    stream ? run<false, true>(m, v, grad, delta, n, k) : run<false, false>(m, v, grad, delta, n, k);
  }
}

}  // namespace mso

#pragma GCC pop_options
