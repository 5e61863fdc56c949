// AdamW as MindSpore's AdamWeightDecay computes it: no bias correction, the weight decay added to the
// update, the parameter read and written by the pass. Plain pointers, a length and a few floats.
//
// MindSpore 2.10's CPU kernel (AdamWeightDecayFp32 in libnnacl.so) has two bodies, read from its
// disassembly. A CPU without AVX-512 runs its scalar loop on every element (and one with it on the
// elements past the last whole 16 of each thread task):
//   m' = fma(g - m, 1 - beta1, m)                                     float
//   v' = fma(fma(g, g, -v), 1 - beta2, v)                             float
//   u  = double(m') / (sqrt(double(v')) + double(eps)) + double(decay * w)   (decay * w in float)
//   w' = float(fma(-double(lr), u, double(w)))                        one rounding to float at the end
// A CPU with AVX-512 runs its vector body on whole 16s, all in float:
//   m' = fma(1 - beta1, g, beta1 * m)        v' = fma(g * g, 1 - beta2, beta2 * v)
//   u  = fma(decay, w, m' / (sqrt(v') + eps))                         w' = fma(u, -lr, w)
// AdamWRounding picks one of the two for every element (adamw_body.h). kDouble, the default, is checked
// bit for bit against MindSpore on a CPU without AVX-512 (tests/kernel/test_adamw_mindspore.py); it is
// bound by the double divide and square root. kFloat32 is the vector body's formula: the speed of
// Adam's pass, MindSpore's bits only where MindSpore takes its vector body. Either way every level and
// thread count gives the same bits.
#pragma once

#include <cstddef>
#include <cstdint>

#include "adam_master.h"

namespace mso {

// Which of MindSpore's two AdamW formulas a pass computes (above).
enum class AdamWRounding { kDouble, kFloat32 };

// The rounding a "Float32" flag (an entry's name, a binding's argument) asks for.
constexpr AdamWRounding adamw_rounding(bool float32) {
  return float32 ? AdamWRounding::kFloat32 : AdamWRounding::kDouble;
}

// One step's hyper-parameters, as ops.AdamWeightDecay takes them (weight_decay 0: no decay).
struct AdamWHyper {
  float lr;
  float beta1;
  float beta2;
  float eps;
  float weight_decay;
  AdamWRounding rounding = AdamWRounding::kDouble;
};

// What every level computes with; derived once per call.
struct AdamWCoeffs {
  float one_minus_beta1;  // 1 - beta1 in float, as MindSpore
  float one_minus_beta2;
  float beta1;            // kFloat32 only
  float beta2;
  float lr;
  float eps;
  float decay;
  std::size_t prefetch_min;  // a chunk at least this long prefetches its streams ahead (tuning.h)
  AdamWRounding rounding;
};

AdamWCoeffs adamw_coeffs(const AdamWHyper& h);

// One level's float32 chunk kernel (the dispatch table's adamw column, adamw_body.h) over [0, n):
// reads the parameter `w`, updates m and v in place and writes the new parameter to `out`, which may
// be `w` itself (the parameter updated in place).
using AdamWChunk = void (*)(const float* w, float* m, float* v, const float* grad, float* out, std::size_t n,
                            const AdamWCoeffs& k);

// One level's master chunk kernel (the adamw_master column): a 16-bit parameter with a float32 master.
// The gradient is widened exactly; the master takes the float32 chunk's step (the decay reads the
// master) and the new 16-bit parameter is the master rounded to nearest even. `param` (the parameter as
// it is now, may be `out`, or null) restarts the master where it was written, as adam_master.h says.
using AdamWMasterChunk = void (*)(float* master, float* m, float* v, const std::uint16_t* grad,
                                  const std::uint16_t* param, std::uint16_t* out, std::size_t n,
                                  const AdamWCoeffs& k, Half half);

// One step's pass over n elements (pass.h) at the active level, optionally locked on this state. The
// caller has checked sizes and aliasing (`out` may be `w`).
void adamw_run(const float* w, float* m, float* v, const float* grad, float* out, std::size_t n,
               const AdamWHyper& h, bool use_locking);

void adamw_master_run(float* master, float* m, float* v, const std::uint16_t* grad, const std::uint16_t* param,
                      std::uint16_t* out, std::size_t n, const AdamWHyper& h, Half half, bool use_locking);

// One whole float32 tensor of a bucket, in host memory: the parameter (updated in place), its moments, its
// gradient, and its own weight decay (a bucket's parameters share all the other hyper-parameters).
struct AdamWTensor {
  float* w;
  float* m;
  float* v;
  const float* grad;
  std::size_t n;
  float weight_decay;
};

// One step over a bucket of whole tensors in one pass (pass.h's run_passes), each parameter updated in
// place with adamw_run's bits. h's weight_decay is unused: each tensor brings its own.
void adamw_run_many(const AdamWTensor* tensors, std::size_t count, const AdamWHyper& h, bool use_locking);

}  // namespace mso
