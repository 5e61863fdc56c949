// The entry points MindSpore's ops.Custom(func_type="aot") calls on the CPU backend.
//
// Inputs, in this order (all float32): moment1, moment2, beta1_power, beta2_power, lr, beta1, beta2, eps,
// gradient; output: delta. moment1 and moment2 are updated in place, as ops.AdamNoUpdateParam does.
// Return codes (MindSpore reports a non-zero code as a failed launch):
//   0 success
//   1 wrong number of inputs and outputs (expected 10)
//   2 an input or the output is not float32
//   3 moment1, moment2, gradient and delta differ in element count, or a scalar input is empty
//   4 beta1_power is 1 (no step has been taken: the bias correction divides by zero)
#include <cstdint>
#include <cstring>

#include "adam.h"

namespace {

constexpr int kInputs = 9;
constexpr int kParams = kInputs + 1;
enum Slot { kM, kV, kBeta1Power, kBeta2Power, kLr, kBeta1, kBeta2, kEps, kGrad, kDelta };

std::int64_t elements(int ndim, const std::int64_t* shape) {
  std::int64_t count = 1;
  for (int i = 0; i < ndim; ++i) count *= shape[i];
  return count;
}

int adam_offload(int nparam, void** params, int* ndims, std::int64_t** shapes, const char** dtypes,
                 bool nesterov, bool use_locking) {
  if (nparam != kParams) return 1;
  for (int i = 0; i < kParams; ++i) {
    if (dtypes[i] == nullptr || std::strcmp(dtypes[i], "float32") != 0) return 2;
  }
  const std::int64_t n = elements(ndims[kM], shapes[kM]);
  if (elements(ndims[kV], shapes[kV]) != n || elements(ndims[kGrad], shapes[kGrad]) != n ||
      elements(ndims[kDelta], shapes[kDelta]) != n) {
    return 3;
  }
  for (int i = kBeta1Power; i <= kEps; ++i) {
    if (elements(ndims[i], shapes[i]) < 1) return 3;
  }
  auto scalar = [&](int slot) { return *static_cast<const float*>(params[slot]); };
  const mso::AdamHyper h{scalar(kLr),    scalar(kBeta1),      scalar(kBeta2),      scalar(kEps),
                         scalar(kBeta1Power), scalar(kBeta2Power), nesterov};
  if (h.beta1_power == 1.0f) return 4;
  mso::adam_run(static_cast<float*>(params[kM]), static_cast<float*>(params[kV]),
                static_cast<const float*>(params[kGrad]), static_cast<float*>(params[kDelta]),
                static_cast<std::size_t>(n), h, use_locking);
  return 0;
}

}  // namespace

#define MSO_EXPORT extern "C" __attribute__((visibility("default")))

MSO_EXPORT int AdamOffloadStep(int nparam, void** params, int* ndims, std::int64_t** shapes, const char** dtypes,
                               void* /*stream*/, void* /*extra*/) {
  return adam_offload(nparam, params, ndims, shapes, dtypes, false, false);
}

MSO_EXPORT int AdamOffloadStepNesterov(int nparam, void** params, int* ndims, std::int64_t** shapes,
                                       const char** dtypes, void* /*stream*/, void* /*extra*/) {
  return adam_offload(nparam, params, ndims, shapes, dtypes, true, false);
}

MSO_EXPORT int AdamOffloadStepLocked(int nparam, void** params, int* ndims, std::int64_t** shapes,
                                     const char** dtypes, void* /*stream*/, void* /*extra*/) {
  return adam_offload(nparam, params, ndims, shapes, dtypes, false, true);
}

MSO_EXPORT int AdamOffloadStepNesterovLocked(int nparam, void** params, int* ndims, std::int64_t** shapes,
                                             const char** dtypes, void* /*stream*/, void* /*extra*/) {
  return adam_offload(nparam, params, ndims, shapes, dtypes, true, true);
}
