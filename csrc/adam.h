// The host Adam kernel of mindspore-offload: plain pointers, a length and a few floats.
// Nothing here knows about MindSpore, NumPy or pybind11.
#pragma once

#include <cstddef>

#include "pass.h"

namespace mso {

// The hyper-parameters of one step, as ops.AdamNoUpdateParam takes them.
// beta1_power and beta2_power are beta^t for this step (already multiplied).
struct AdamHyper {
  float lr;
  float beta1;
  float beta2;
  float eps;
  float beta1_power;
  float beta2_power;
  bool nesterov;
};

// What every instruction-set level computes with; derived once per call from AdamHyper.
struct AdamCoeffs {
  float beta1;
  float beta2;
  float one_minus_beta1;
  float one_minus_beta2;
  float neg_lr;  // -lr * sqrt(1 - beta2_power) / (1 - beta1_power), rounded as MindSpore does
  float eps;
  std::size_t prefetch_min;  // a chunk at least this long prefetches its streams ahead (tuning.h)
};

// What a chunk kernel does with the delta it computes, in `out`:
//   kStore:  out = delta
//   kStream: out = delta, with non-temporal stores (only worth it far past the cache)
//   kApply:  out += delta (out is the parameter itself, updated in the same pass; the addition
//            rounds exactly as MindSpore's assign_add(param, delta) does)
enum class Output { kStore, kStream, kApply };

// How far ahead (floats) a chunk past prefetch_min prefetches g, m, v (and the parameter when applying).
constexpr std::size_t kPrefetchAhead = 1024;  // 4 KiB

// One level's chunk kernel (the dispatch table's adam column, adam_body.h): updates m and v in place
// over [0, n) and writes or applies the delta.
using AdamChunk = void (*)(float* m, float* v, const float* grad, float* out, std::size_t n, const AdamCoeffs& k,
                           bool nesterov, Output output);

AdamCoeffs adam_coeffs(const AdamHyper& h);

// An AdamChunk with MindSpore's scalar rounding, for a tensor's leftovers (adam_leftover.cpp): every
// level's pass ends with it, so the levels still agree with each other bit for bit. kStream stores plainly.
void adam_leftover(float* m, float* v, const float* grad, float* out, std::size_t n, const AdamCoeffs& k,
                   bool nesterov, Output output);

// One step's pass over n elements (pass.h): coefficients, level, threads, optional lock on this state.
// Writes the delta to `out`, or with apply=true adds it to `out` (the parameter). `leftover_from` as
// run_pass's. The caller has checked the sizes, the aliasing and that beta1_power != 1.
void adam_run(float* m, float* v, const float* grad, float* out, std::size_t n, const AdamHyper& h,
              bool use_locking, bool apply = false, std::size_t leftover_from = kWholeTensor);

// One whole tensor of a bucket: its moments, gradient and `out` (the delta, or the parameter when applying).
struct AdamTensor {
  float* m;
  float* v;
  const float* grad;
  float* out;
  std::size_t n;
};

// One step over a bucket of whole tensors sharing the same hyper-parameters, in one pass (run_passes):
// every tensor gets adam_run's bits. Writes or (apply) adds each delta to its `out`.
void adam_run_many(const AdamTensor* tensors, std::size_t count, const AdamHyper& h, bool use_locking, bool apply);

}  // namespace mso
