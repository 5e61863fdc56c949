// The entry points MindSpore's ops.Custom(func_type="aot") calls on the CPU backend.
//
// AdamOffloadStep[Nesterov][Locked]: inputs, in this order (all float32): moment1, moment2, beta1_power,
//   beta2_power, lr, beta1, beta2, eps, gradient; output: delta. moment1 and moment2 are updated in place,
//   as ops.AdamNoUpdateParam does; the graph adds delta to the parameter on its own device.
// AdamOffloadApply[Nesterov][Locked]: for parameters that live in host memory (the CPU backend): inputs
//   param, then the nine above; output: one float32 (0). param, moment1 and moment2 are updated in place
//   in one pass; param + delta rounds exactly as assign_add(param, delta) does.
// AdamOffloadSlice[Nesterov][Locked]: a slice of a tensor's moments (shard_state=True): inputs
//   leftover_from (int64, one element: the index in this slice from which the whole tensor's last
//   n mod 8 elements lie, the slice's length when none do), then the nine of Step; output: delta. Gives
//   the bits of the whole tensor's step on the slice's elements.
// Return codes (MindSpore reports a non-zero code as a failed launch):
//   0 success
//   1 wrong number of inputs and outputs (expected 10, or 11 for Apply and Slice)
//   2 an input or the output is not float32 (leftover_from: not int64)
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

// What comes before the nine inputs every entry point shares.
enum class Lead { kNone, kParam, kLeftoverFrom };

bool is(const char* dtype, const char* name) { return dtype != nullptr && std::strcmp(dtype, name) == 0; }

int adam_offload(int nparam, void** params, int* ndims, std::int64_t** shapes, const char** dtypes,
                 bool nesterov, bool use_locking, Lead lead) {
  const bool apply = lead == Lead::kParam;
  if (nparam != kSlots + (lead == Lead::kNone ? 0 : 1)) return 1;
  for (int i = 0; i < nparam; ++i) {
    if (!is(dtypes[i], i == 0 && lead == Lead::kLeftoverFrom ? "int64" : "float32")) return 2;
  }
  float* param = nullptr;
  std::int64_t param_n = 0;
  std::size_t leftover_from = mso::kWholeTensor;
  if (lead != Lead::kNone) {  // the lead input comes first; the rest is laid out as for Step
    if (apply) {
      param = static_cast<float*>(params[0]);
      param_n = elements(ndims[0], shapes[0]);
    } else {
      if (elements(ndims[0], shapes[0]) < 1) return 3;
      const std::int64_t from = *static_cast<const std::int64_t*>(params[0]);
      leftover_from = from < 0 ? 0 : static_cast<std::size_t>(from);
    }
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
                static_cast<std::size_t>(n), h, use_locking, apply, leftover_from);
  return 0;
}

}  // namespace

#define MSO_ENTRY(name, nesterov, use_locking, lead)                                                      \
  extern "C" __attribute__((visibility("default"))) int name(int nparam, void** params, int* ndims,       \
                                                             std::int64_t** shapes, const char** dtypes, \
                                                             void* /*stream*/, void* /*extra*/) {        \
    return adam_offload(nparam, params, ndims, shapes, dtypes, nesterov, use_locking, Lead::lead);         \
  }

MSO_ENTRY(AdamOffloadStep, false, false, kNone)
MSO_ENTRY(AdamOffloadStepNesterov, true, false, kNone)
MSO_ENTRY(AdamOffloadStepLocked, false, true, kNone)
MSO_ENTRY(AdamOffloadStepNesterovLocked, true, true, kNone)
MSO_ENTRY(AdamOffloadApply, false, false, kParam)
MSO_ENTRY(AdamOffloadApplyNesterov, true, false, kParam)
MSO_ENTRY(AdamOffloadApplyLocked, false, true, kParam)
MSO_ENTRY(AdamOffloadApplyNesterovLocked, true, true, kParam)
MSO_ENTRY(AdamOffloadSlice, false, false, kLeftoverFrom)
MSO_ENTRY(AdamOffloadSliceNesterov, true, false, kLeftoverFrom)
MSO_ENTRY(AdamOffloadSliceLocked, false, true, kLeftoverFrom)
MSO_ENTRY(AdamOffloadSliceNesterovLocked, true, true, kLeftoverFrom)
