// Portable level: the same operations in the same order as the vector levels, one element at a time,
// so every level gives the same bits (fma, sqrt and division are all correctly rounded).
#include <cmath>
#include <cstddef>

#include "adam.h"

namespace mso {
namespace {

template <bool kNesterov, bool kApply>
void run(float* m, float* v, const float* grad, float* out, std::size_t n, const AdamCoeffs& k) {
  for (std::size_t i = 0; i < n; ++i) {
    const float g = grad[i];
    const float mi = std::fma(m[i], k.beta1, k.one_minus_beta1 * g);
    const float vi = std::fma(v[i], k.beta2, (k.one_minus_beta2 * g) * g);
    m[i] = mi;
    v[i] = vi;
    const float num = kNesterov ? std::fma(mi, k.beta1, k.one_minus_beta1 * g) : mi;
    const float delta = (k.neg_lr * num) / (std::sqrt(vi) + k.eps);
    out[i] = kApply ? out[i] + delta : delta;
  }
}

}  // namespace

void adam_step_scalar(float* m, float* v, const float* grad, float* out, std::size_t n,
                      const AdamCoeffs& k, bool nesterov, Output output) {
  const bool apply = output == Output::kApply;  // streaming stores are a vector-level matter
  if (nesterov) {
    apply ? run<true, true>(m, v, grad, out, n, k) : run<true, false>(m, v, grad, out, n, k);
  } else {
    apply ? run<false, true>(m, v, grad, out, n, k) : run<false, false>(m, v, grad, out, n, k);
  }
}

}  // namespace mso
