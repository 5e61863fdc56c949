// Portable level: the same operations in the same order as the vector levels, one element at a time,
// so every level gives the same bits (fma, sqrt and division are all correctly rounded).
#include <cmath>
#include <cstddef>

#include "adam.h"

namespace mso {
namespace {

template <bool kNesterov>
void run(float* m, float* v, const float* grad, float* delta, std::size_t n, const AdamCoeffs& k) {
  for (std::size_t i = 0; i < n; ++i) {
    const float g = grad[i];
    const float mi = std::fma(m[i], k.beta1, k.one_minus_beta1 * g);
    const float vi = std::fma(v[i], k.beta2, (k.one_minus_beta2 * g) * g);
    m[i] = mi;
    v[i] = vi;
    const float num = kNesterov ? std::fma(mi, k.beta1, k.one_minus_beta1 * g) : mi;
    delta[i] = (k.neg_lr * num) / (std::sqrt(vi) + k.eps);
  }
}

}  // namespace

void adam_step_scalar(float* m, float* v, const float* grad, float* delta, std::size_t n,
                      const AdamCoeffs& k, bool nesterov, bool /*stream*/) {
  if (nesterov) {
    run<true>(m, v, grad, delta, n, k);
  } else {
    run<false>(m, v, grad, delta, n, k);
  }
}

}  // namespace mso
