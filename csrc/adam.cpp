// The float32 pass: coefficients, the store kind, and the active level's chunk kernel through the
// one driver (pass.h).
#include "adam.h"

#include <cmath>
#include <cstdint>
#include <vector>

#include "dispatch.h"
#include "fp_env.h"
#include "tuning.h"

namespace mso {

AdamCoeffs adam_coeffs(const AdamHyper& h) {
  // MindSpore's AdamNoUpdateParam: lr = lr * sqrt(1 - beta2_power) / (1 - beta1_power), in float,
  // in the pass's FP environment (a subnormal lr_t is kept, as in the pass).
  const PassFpEnv fp_env;
  const float lr_t = h.lr * std::sqrt(1.0f - h.beta2_power) / (1.0f - h.beta1_power);
  return AdamCoeffs{h.beta1, h.beta2, 1.0f - h.beta1, 1.0f - h.beta2, -lr_t, h.eps, tuning().prefetch_min};
}

void adam_run(float* m, float* v, const float* grad, float* out, std::size_t n, const AdamHyper& h,
              bool use_locking, bool apply, std::size_t leftover_from) {
  const bool stream = n >= tuning().stream_min && (reinterpret_cast<std::uintptr_t>(out) & 3) == 0;
  const Output output = apply ? Output::kApply : stream ? Output::kStream : Output::kStore;
  const AdamCoeffs k = adam_coeffs(h);
  const auto over = [&](AdamChunk fn) {  // fn on [at, at + len)
    return [=, &k](std::size_t at, std::size_t len) {
      fn(m + at, v + at, grad + at, out + at, len, k, h.nesterov, output);
    };
  };
  run_pass(n, leftover_from, m, use_locking, over(active_level().kernels.adam), over(adam_leftover));
}

void adam_run_many(const AdamTensor* tensors, std::size_t count, const AdamHyper& h, bool use_locking, bool apply) {
  const AdamCoeffs k = adam_coeffs(h);
  std::vector<std::size_t> sizes(count);
  std::vector<const void*> states(count);
  std::vector<Output> outputs(count);
  for (std::size_t i = 0; i < count; ++i) {
    const AdamTensor& t = tensors[i];
    sizes[i] = t.n;
    states[i] = t.m;
    const bool stream = t.n >= tuning().stream_min && (reinterpret_cast<std::uintptr_t>(t.out) & 3) == 0;
    outputs[i] = apply ? Output::kApply : stream ? Output::kStream : Output::kStore;
  }
  const auto over = [&](AdamChunk fn) {  // fn on tensor i's [at, at + len)
    return [=, &k, &outputs](std::size_t i, std::size_t at, std::size_t len) {
      const AdamTensor& t = tensors[i];
      fn(t.m + at, t.v + at, t.grad + at, t.out + at, len, k, h.nesterov, outputs[i]);
    };
  };
  run_passes(count, sizes.data(), states.data(), use_locking, over(active_level().kernels.adam),
             over(adam_leftover));
}

}  // namespace mso
