// The entry points MindSpore's ops.Custom(func_type="aot") calls on the CPU backend.
//
// AdamOffloadStep[Nesterov][Locked]: inputs, in this order (all float32): moment1, moment2, beta1_power,
//   beta2_power, lr, beta1, beta2, eps, gradient; output: delta. moment1 and moment2 are updated in place,
//   as ops.AdamNoUpdateParam does; the graph adds delta to the parameter on its own device.
// AdamOffloadApply[Nesterov][Locked]: for parameters that live in host memory (the CPU backend): inputs
//   param, then the nine above; output: one float32 (0). param, moment1 and moment2 are updated in place
//   in one pass; param + delta rounds exactly as assign_add(param, delta) does.
// Return codes (MindSpore reports a non-zero code as a failed launch):
//   0 success
//   1 wrong number of inputs and outputs (expected 10, or 11 for Apply)
//   2 an input or the output is not float32
//   3 param, moment1, moment2, gradient and delta differ in element count, or a scalar input is empty
//   4 beta1_power is 1 (no step has been taken: the bias correction divides by zero)
#include <cstdint>
#include <cstring>

#include "adam.h"

namespace {

enum Slot { kM, kV, kBeta1Power, kBeta2Power, kLr, kBeta1, kBeta2, kEps, kGrad, kOut, kSlots };

std::int64_t elements(int ndim, const std::int64_t* shape) {
  std::int64_t count = 1;
  for (int i = 0; i < ndim; ++i) count *= shape[i];
  return count;
}

int adam_offload(int nparam, void** params, int* ndims, std::int64_t** shapes, const char** dtypes,
                 bool nesterov, bool use_locking, bool apply) {
  if (nparam != kSlots + (apply ? 1 : 0)) return 1;
  for (int i = 0; i < nparam; ++i) {
    if (dtypes[i] == nullptr || std::strcmp(dtypes[i], "float32") != 0) return 2;
  }
  float* param = nullptr;
  std::int64_t param_n = 0;
  if (apply) {  // the parameter comes first; the rest is laid out as for the delta entry points
    param = static_cast<float*>(params[0]);
    param_n = elements(ndims[0], shapes[0]);
    ++params, ++ndims, ++shapes;
  }
  const std::int64_t n = elements(ndims[kM], shapes[kM]);
  if (elements(ndims[kV], shapes[kV]) != n || elements(ndims[kGrad], shapes[kGrad]) != n) return 3;
  if (apply ? param_n != n : elements(ndims[kOut], shapes[kOut]) != n) return 3;
  for (int i = kBeta1Power; i <= kEps; ++i) {
    if (elements(ndims[i], shapes[i]) < 1) return 3;
  }
  auto scalar = [&](int slot) { return *static_cast<const float*>(params[slot]); };
  const mso::AdamHyper h{scalar(kLr),         scalar(kBeta1),      scalar(kBeta2), scalar(kEps),
                         scalar(kBeta1Power), scalar(kBeta2Power), nesterov};
  if (h.beta1_power == 1.0f) return 4;
  if (apply && elements(ndims[kOut], shapes[kOut]) >= 1) *static_cast<float*>(params[kOut]) = 0.0f;
  mso::adam_run(static_cast<float*>(params[kM]), static_cast<float*>(params[kV]),
                static_cast<const float*>(params[kGrad]), apply ? param : static_cast<float*>(params[kOut]),
                static_cast<std::size_t>(n), h, use_locking, apply);
  return 0;
}

}  // namespace

#define MSO_ENTRY(name, nesterov, use_locking, apply)                                                      \
  extern "C" __attribute__((visibility("default"))) int name(int nparam, void** params, int* ndims,       \
                                                             std::int64_t** shapes, const char** dtypes, \
                                                             void* /*stream*/, void* /*extra*/) {        \
    return adam_offload(nparam, params, ndims, shapes, dtypes, nesterov, use_locking, apply);             \
  }

MSO_ENTRY(AdamOffloadStep, false, false, false)
MSO_ENTRY(AdamOffloadStepNesterov, true, false, false)
MSO_ENTRY(AdamOffloadStepLocked, false, true, false)
MSO_ENTRY(AdamOffloadStepNesterovLocked, true, true, false)
MSO_ENTRY(AdamOffloadApply, false, false, true)
MSO_ENTRY(AdamOffloadApplyNesterov, true, false, true)
MSO_ENTRY(AdamOffloadApplyLocked, false, true, true)
MSO_ENTRY(AdamOffloadApplyNesterovLocked, true, true, true)
