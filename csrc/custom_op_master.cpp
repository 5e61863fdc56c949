// The aot entry points for 16-bit parameters with float32 master weights (see custom_op.cpp for the
// float32 ones; MindSpore's ops.Custom(func_type="aot") calls them on the CPU backend).
//
// Every entry's inputs share one layout; the 16-bit parameter always comes first (or second, after
// Slice's lead), because the pass reads it: where it differs from the master rounded, the parameter was
// written since the last step and its master restarts from it (adam_master.h).
//
// AdamOffloadMaster[Nesterov][Locked][Decay][Unscale]: a float16 or bfloat16 parameter with a float32
//   master. Inputs, in this order: param (16-bit, read only), master, moment1, moment2, beta1_power,
//   beta2_power, lr, beta1, beta2, eps, weight_decay, grad_scale (float32), gradient (param's dtype);
//   output: the new parameter, of the gradient's dtype. master, moment1 and moment2 are updated in place.
//   With Decay the gradient is first g = master * weight_decay + g, with Unscale then g = g * grad_scale,
//   both in float32 (MindSpore's decay_weight and scale_grad on a float32 parameter).
// AdamOffloadMasterApply[...]: for a parameter in host memory (the CPU backend): the same inputs, but
//   the parameter is written in place with the new 16-bit value (MindSpore's CPU backend has no bfloat16
//   Assign to do it in the graph); output: one float32 (0).
// AdamOffloadMasterSlice[...]: a slice of k elements of a tensor's master and moments (shard_state=True):
//   first (int64, two elements) leftover_from, as AdamOffloadSlice's in custom_op.cpp, and start, where
//   the slice begins in the gradient and in param; then the thirteen inputs above, master and moments of
//   k elements. The gradient and param are either the slice itself (start 0) or the whole tensor
//   (MindSpore's CPU backend cannot cut a bfloat16 slice); slice elements past the gradient's end (a
//   start past it too) are padding, left as they are, with 0 out. Output: the slice of the new
//   parameter, of the gradient's dtype or int16 (its bits, which MindSpore's CPU AllGather takes where it
//   does not take bfloat16). Gives the whole tensor's bits.
// AdamOffloadMasterPut: the parameter (float16 or bfloat16, written in place) and the gathered slices
//   (its dtype or int16, at least its element count; the padding past it is ignored); output: one
//   float32 (0). Copies the bits, for the CPU backend, which has no bfloat16 Assign.
// Return codes (MindSpore reports a non-zero code as a failed launch):
//   0 success
//   1 not 14 inputs and outputs (15 for Slice, 3 for Put)
//   2 a float32 input is not float32; the gradient is not float16/bfloat16; the parameter, the gradient
//     and (without Apply) the output differ in dtype (Slice, Put: or int16); Apply's and Put's output is not
//     float32; leftover_from is not int64
//   3 master, moment1, moment2, gradient, the parameter and (without Apply) the output differ in element
//     count, or a scalar input is empty (Slice: the gradient and the parameter differ in element count, a
//     negative start, or a lead of fewer than two elements; Put: fewer gathered elements than the
//     parameter has)
//   4 beta1_power is 1 (no step has been taken: the bias correction divides by zero)
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <initializer_list>

#include "adam_master.h"

namespace {

std::int64_t elements(int ndim, const std::int64_t* shape) {
  std::int64_t count = 1;
  for (int i = 0; i < ndim; ++i) count *= shape[i];
  return count;
}

enum Slot {
  kParam, kMaster, kMoment1, kMoment2, kBeta1Power, kBeta2Power, kLr, kBeta1, kBeta2, kEps, kWeightDecay,
  kGradScale, kGrad, kOut, kSlots
};

bool is(const char* dtype, const char* name) { return dtype != nullptr && std::strcmp(dtype, name) == 0; }

bool is_half(const char* dtype) { return is(dtype, "float16") || is(dtype, "bfloat16"); }

// Return: the new parameter comes back as the output; Apply: written in place; Slice: a slice's.
enum class Mode { kReturn, kApply, kSlice };

int adam_offload_master(int nparam, void** params, int* ndims, std::int64_t** shapes, const char** dtypes,
                        bool nesterov, bool use_locking, bool decay, bool unscale, Mode mode) {
  const bool apply = mode == Mode::kApply;
  const bool slice = mode == Mode::kSlice;
  if (nparam != kSlots + (slice ? 1 : 0)) return 1;
  std::size_t leftover_from = mso::kWholeTensor;
  std::int64_t start = 0;
  if (slice) {  // the lead input; the rest is laid out as without it
    if (!is(dtypes[0], "int64")) return 2;
    if (elements(ndims[0], shapes[0]) < 2) return 3;
    const std::int64_t from = static_cast<const std::int64_t*>(params[0])[0];
    leftover_from = from < 0 ? 0 : static_cast<std::size_t>(from);
    start = static_cast<const std::int64_t*>(params[0])[1];
    ++params, ++ndims, ++shapes, ++dtypes;
  }
  const char* half = dtypes[kParam];
  if (!is_half(half) || !is(dtypes[kGrad], half)) return 2;
  for (int i = kMaster; i < kGrad; ++i) {
    if (!is(dtypes[i], "float32")) return 2;
  }
  if (!is(dtypes[kOut], apply ? "float32" : half) && !(slice && is(dtypes[kOut], "int16"))) return 2;
  const std::int64_t n = elements(ndims[kMaster], shapes[kMaster]);
  for (int slot : {kMoment1, kMoment2}) {
    if (elements(ndims[slot], shapes[slot]) != n) return 3;
  }
  // Slice: the gradient's (and param's) elements from start on (at most n) are the slice's; the rest is
  // padding.
  const std::int64_t grad_n = elements(ndims[kGrad], shapes[kGrad]);
  if (elements(ndims[kParam], shapes[kParam]) != grad_n) return 3;
  if (slice ? start < 0 : grad_n != n) return 3;
  const std::int64_t count = slice ? std::max<std::int64_t>(0, std::min(n, grad_n - start)) : n;
  if (apply ? elements(ndims[kOut], shapes[kOut]) < 1 : elements(ndims[kOut], shapes[kOut]) != n) return 3;
  for (int i = kBeta1Power; i <= kGradScale; ++i) {
    if (elements(ndims[i], shapes[i]) < 1) return 3;
  }
  auto scalar = [&](int slot) { return *static_cast<const float*>(params[slot]); };
  const mso::AdamHyper h{scalar(kLr),  scalar(kBeta1),      scalar(kBeta2), scalar(kEps),
                         scalar(kBeta1Power), scalar(kBeta2Power), nesterov};
  if (h.beta1_power == 1.0f) return 4;
  const mso::GradPrep prep{scalar(kWeightDecay), scalar(kGradScale), decay, unscale};
  const std::int64_t offset = count > 0 ? start : 0;
  auto* param = static_cast<std::uint16_t*>(params[kParam]);
  if (apply) *static_cast<float*>(params[kOut]) = 0.0f;
  auto* out = apply ? param : static_cast<std::uint16_t*>(params[kOut]);
  std::fill(out + count, out + n, std::uint16_t{0});
  mso::adam_master_run(static_cast<float*>(params[kMaster]), static_cast<float*>(params[kMoment1]),
                       static_cast<float*>(params[kMoment2]), static_cast<const std::uint16_t*>(params[kGrad]) + offset,
                       param + offset, out, static_cast<std::size_t>(count), h, prep,
                       is(half, "float16") ? mso::Half::kFloat16 : mso::Half::kBFloat16, use_locking, leftover_from);
  return 0;
}

int put_gathered(int nparam, void** params, int* ndims, std::int64_t** shapes, const char** dtypes) {
  if (nparam != 3) return 1;
  if (!is_half(dtypes[0]) || !(is(dtypes[1], dtypes[0]) || is(dtypes[1], "int16")) || !is(dtypes[2], "float32")) {
    return 2;
  }
  const std::int64_t n = elements(ndims[0], shapes[0]);
  if (elements(ndims[1], shapes[1]) < n || elements(ndims[2], shapes[2]) < 1) return 3;
  std::memcpy(params[0], params[1], static_cast<std::size_t>(n) * sizeof(std::uint16_t));
  *static_cast<float*>(params[2]) = 0.0f;
  return 0;
}

}  // namespace

#define MSO_MASTER_ENTRY(name, nesterov, use_locking, decay, unscale, mode)                                   \
  extern "C" __attribute__((visibility("default"))) int name(int nparam, void** params, int* ndims,             \
                                                             std::int64_t** shapes, const char** dtypes,       \
                                                             void* /*stream*/, void* /*extra*/) {              \
    return adam_offload_master(nparam, params, ndims, shapes, dtypes, nesterov, use_locking, decay, unscale, Mode::mode); \
  }
#define MSO_MASTER_ENTRIES(kind, mode, suffix, decay, unscale)                                 \
  MSO_MASTER_ENTRY(kind##suffix, false, false, decay, unscale, mode)                           \
  MSO_MASTER_ENTRY(kind##Nesterov##suffix, true, false, decay, unscale, mode)                  \
  MSO_MASTER_ENTRY(kind##Locked##suffix, false, true, decay, unscale, mode)                    \
  MSO_MASTER_ENTRY(kind##NesterovLocked##suffix, true, true, decay, unscale, mode)
#define MSO_MASTER_KIND(kind, mode)                \
  MSO_MASTER_ENTRIES(kind, mode, , false, false)   \
  MSO_MASTER_ENTRIES(kind, mode, Decay, true, false) \
  MSO_MASTER_ENTRIES(kind, mode, Unscale, false, true) \
  MSO_MASTER_ENTRIES(kind, mode, DecayUnscale, true, true)

MSO_MASTER_KIND(AdamOffloadMaster, kReturn)
MSO_MASTER_KIND(AdamOffloadMasterApply, kApply)
MSO_MASTER_KIND(AdamOffloadMasterSlice, kSlice)

extern "C" __attribute__((visibility("default"))) int AdamOffloadMasterPut(int nparam, void** params, int* ndims,
                                                                           std::int64_t** shapes, const char** dtypes,
                                                                           void* /*stream*/, void* /*extra*/) {
  return put_gathered(nparam, params, ndims, shapes, dtypes);
}
