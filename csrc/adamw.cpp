// The AdamW passes: coefficients and the active level's chunk kernels through the one driver (pass.h).
// Every element is rounded by the same formula, the one the hyper-parameters pick (adamw.h), so there are
// no leftovers of its own to round apart: the whole tensor is the body.
#include "adamw.h"

#include <vector>

#include "dispatch.h"
#include "tuning.h"

namespace mso {

AdamWCoeffs adamw_coeffs(const AdamWHyper& h) {
  return AdamWCoeffs{1.0f - h.beta1, 1.0f - h.beta2, h.beta1, h.beta2, h.lr, h.eps, h.weight_decay, tuning().prefetch_min,
                     h.rounding};
}

void adamw_run(const float* w, float* m, float* v, const float* grad, float* out, std::size_t n,
               const AdamWHyper& h, bool use_locking) {
  const AdamWCoeffs k = adamw_coeffs(h);
  const AdamWChunk fn = active_level().kernels.adamw;
  const auto chunk = [=, &k](std::size_t at, std::size_t len) { fn(w + at, m + at, v + at, grad + at, out + at, len, k); };
  run_pass(n, n, m, use_locking, chunk, chunk);
}

void adamw_master_run(float* master, float* m, float* v, const std::uint16_t* grad, const std::uint16_t* param,
                      std::uint16_t* out, std::size_t n, const AdamWHyper& h, Half half, bool use_locking) {
  const AdamWCoeffs k = adamw_coeffs(h);
  const AdamWMasterChunk fn = active_level().kernels.adamw_master;
  const auto chunk = [=, &k](std::size_t at, std::size_t len) {
    fn(master + at, m + at, v + at, grad + at, param ? param + at : nullptr, out + at, len, k, half);
  };
  run_pass(n, n, m, use_locking, chunk, chunk);
}

void adamw_run_many(const AdamWTensor* tensors, std::size_t count, const AdamWHyper& h, bool use_locking) {
  std::vector<AdamWCoeffs> coeffs(count);
  std::vector<std::size_t> sizes(count);
  std::vector<const void*> states(count);
  for (std::size_t i = 0; i < count; ++i) {
    AdamWHyper own = h;
    own.weight_decay = tensors[i].weight_decay;
    coeffs[i] = adamw_coeffs(own);
    sizes[i] = tensors[i].n;
    states[i] = tensors[i].m;
  }
  const AdamWChunk fn = active_level().kernels.adamw;
  // The body and the leftovers are one kernel (no rounding of its own at the end, as in adamw_run).
  const auto chunk = [=, &coeffs](std::size_t i, std::size_t at, std::size_t len) {
    const AdamWTensor& t = tensors[i];
    fn(t.w + at, t.m + at, t.v + at, t.grad + at, t.w + at, len, coeffs[i]);
  };
  run_passes(count, sizes.data(), states.data(), use_locking, chunk, chunk);
}

}  // namespace mso
