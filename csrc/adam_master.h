// 16-bit parameters with float32 master weights: one host pass reads the 16-bit gradient and the
// float32 master, m and v, and writes all three and the new 16-bit parameter (rounded to nearest even
// from the master). The update of m, v and the delta are adam.h's, bit for bit.
//
// The pass also reads the 16-bit parameter as it is now. Where its bits differ from the master rounded,
// the parameter was written since the last pass (a checkpoint loaded, set_data, an assign in the
// user's graph): that element's master restarts from the written value, widened exactly, before the
// step, so a write is never undone by the next step. Elements nobody wrote keep their master.
#pragma once

#include <cstddef>
#include <cstdint>

#include "adam.h"

namespace mso {

enum class Half { kFloat16, kBFloat16 };

// What is done to the widened gradient before Adam, in float32, as MindSpore's optimizer does to a
// float32 gradient: g = master * weight_decay + g (decay_weight), then g = g * grad_scale
// (scale_grad, grad_scale = 1 / loss_scale). Decaying with the master keeps the float32 path's bits.
struct GradPrep {
  float weight_decay;
  float grad_scale;
  bool decay;
  bool unscale;
};

// One level's chunk kernel (the dispatch table's master column, adam_master_body.h) over [0, n).
// `param` is the 16-bit parameter as it is now (it may be `out`), or null to skip the check above.
using MasterChunk = void (*)(float* master, float* m, float* v, const std::uint16_t* grad,
                             const std::uint16_t* param, std::uint16_t* out, std::size_t n, const AdamCoeffs& k,
                             const GradPrep& p, bool nesterov, Half half);

// One step's pass over n elements (pass.h) at the active level. The caller has checked sizes, aliasing
// and beta1_power != 1. `out` may be the 16-bit parameter itself; `param` (or null) as MasterChunk's;
// `leftover_from` as run_pass's (shard_state=True's slices give the whole tensor's bits).
void adam_master_run(float* master, float* m, float* v, const std::uint16_t* grad, const std::uint16_t* param,
                     std::uint16_t* out, std::size_t n, const AdamHyper& h, const GradPrep& p, Half half, bool use_locking,
                     std::size_t leftover_from = kWholeTensor);

}  // namespace mso
