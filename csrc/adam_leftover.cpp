// The last (n mod 8) elements of a tensor, rounded the way MindSpore's own kernel rounds them.
//
// MindSpore 2.10's AdamDeltaFp32 (libnnacl.so) runs 8 floats at a time and finishes each thread task
// with a plain C loop that its compiler contracted differently from the vector body. Read from its
// disassembly and checked bit for bit against ops.AdamNoUpdateParam (tests/kernel/test_leftover_mindspore.py):
//   m' = fma(1 - beta1, g, round(beta1 * m))            the vector body: fma(m, beta1, round((1 - beta1) * g))
//   v' = fma(round((1 - beta2) * g), g, round(beta2 * v))
//   num = nesterov ? fma(beta1, m', round((1 - beta1) * g)) : m'
//   delta = float(double(round(-lr * num)) / (sqrt(double(v')) + double(eps)))   in double precision
// A tensor MindSpore runs as one task has exactly these last n mod 8 elements; reproducing them makes
// such tensors (every tensor under 8 elements always) bit-identical to MindSpore's.
//
// Built at the x86-64 baseline with -ffp-contract=off (setup.py), so only the fmas written here fuse;
// std::fma is correctly rounded with or without FMA hardware, and every level calls this same code.
#include <cmath>
#include <cstddef>

#include "adam.h"

namespace mso {

void adam_leftover(float* m, float* v, const float* grad, float* out, std::size_t n, const AdamCoeffs& k,
                   bool nesterov, Output output) {
  const bool apply = output == Output::kApply;
  for (std::size_t i = 0; i < n; ++i) {
    const float g = grad[i];
    const float mi = std::fma(k.one_minus_beta1, g, k.beta1 * m[i]);
    const float vi = std::fma(k.one_minus_beta2 * g, g, k.beta2 * v[i]);
    m[i] = mi;
    v[i] = vi;
    const float num = nesterov ? std::fma(k.beta1, mi, k.one_minus_beta1 * g) : mi;
    const double denom = std::sqrt(static_cast<double>(vi)) + static_cast<double>(k.eps);
    const float delta = static_cast<float>(static_cast<double>(k.neg_lr * num) / denom);
    out[i] = apply ? out[i] + delta : delta;
  }
}

}  // namespace mso
