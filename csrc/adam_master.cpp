// The master pass (16-bit parameters with float32 master weights): the active level's chunk kernel
// through the one driver (pass.h), and the leftovers rounded as the float32 pass rounds them.
#include "adam_master.h"

#include <algorithm>
#include <cstdint>

#include "dispatch.h"
#include "half.h"

namespace mso {
namespace {

float widen(std::uint16_t x, Half half) { return half == Half::kFloat16 ? half_to_float(x) : bfloat16_to_float(x); }

std::uint16_t narrow(float x, Half half) { return half == Half::kFloat16 ? float_to_half(x) : float_to_bfloat16(x); }

// A MasterChunk for a tensor's leftovers, as the float32 pass rounds them (adam_leftover.cpp: MindSpore's
// scalar loop), so the master stays bit-identical to a float32 parameter there too. A slice can hold
// more than 8 such elements (its padding past the tensor's end), so they go 8 at a time.
void master_leftover(float* master, float* m, float* v, const std::uint16_t* grad, const std::uint16_t* param,
                     std::uint16_t* out, std::size_t n, const AdamCoeffs& k, const GradPrep& prep, bool nesterov,
                     Half half) {
  for (std::size_t at = 0; at < n; at += kMindSporeVectorWidth) {
    const std::size_t rest = std::min(kMindSporeVectorWidth, n - at);
    float* w = master + at;
    float g32[kMindSporeVectorWidth];
    for (std::size_t i = 0; i < rest; ++i) {
      // the vector levels' follow(): compared as widened bits, so every level keeps the same elements
      if (param != nullptr && float_bits(widen(narrow(w[i], half), half)) != float_bits(widen(param[at + i], half))) {
        w[i] = widen(param[at + i], half);
      }
      float gi = widen(grad[at + i], half);
      if (prep.decay) gi = w[i] * prep.weight_decay + gi;
      if (prep.unscale) gi = gi * prep.grad_scale;
      g32[i] = gi;
    }
    adam_leftover(m + at, v + at, g32, w, rest, k, nesterov, Output::kApply);
    for (std::size_t i = 0; i < rest; ++i) out[at + i] = narrow(w[i], half);
  }
}

}  // namespace

void adam_master_run(float* master, float* m, float* v, const std::uint16_t* grad, const std::uint16_t* param,
                     std::uint16_t* out, std::size_t n, const AdamHyper& h, const GradPrep& p, Half half,
                     bool use_locking, std::size_t leftover_from) {
  const AdamCoeffs k = adam_coeffs(h);
  const auto over = [&](MasterChunk fn) {  // fn on [at, at + len)
    return [=, &k, &p](std::size_t at, std::size_t len) {
      fn(master + at, m + at, v + at, grad + at, param ? param + at : nullptr, out + at, len, k, p, h.nesterov, half);
    };
  };
  run_pass(n, leftover_from, m, use_locking, over(active_level().kernels.master), over(master_leftover));
}

}  // namespace mso
