// The C ABI of the library's custom-op entry points, and the one reader of their arguments.
//
// MindSpore's ops.Custom(func_type="aot") calls each exported entry on the CPU backend as
//   int name(int nparam, void** params, int* ndims, int64_t** shapes, const char** dtypes, void* stream,
//            void* extra)
// with the inputs, then the output, in the order below; stream and extra are unused. Every entry checks
// every argument before it writes anything. A name's suffixes fix its variant: Nesterov (the Nesterov
// numerator), Locked (use_locking: the pass holds a lock on its state), Decay, Unscale (below).
//
// float32 parameters (custom_op.cpp):
//   AdamOffloadStep[Nesterov][Locked]: moment1, moment2, beta1_power, beta2_power, lr, beta1, beta2, eps,
//     gradient (all float32; the six scalars of at least one element); output: delta, float32. moment1 and
//     moment2 are updated in place, as ops.AdamNoUpdateParam does; the graph adds delta to the parameter.
//   AdamOffloadApply[Nesterov][Locked]: param (float32, host memory: the CPU backend), then Step's nine;
//     output: one float32, set to 0. param, moment1 and moment2 are updated in place in one pass;
//     param + delta rounds exactly as assign_add(param, delta) does.
//   AdamOffloadSlice[Nesterov][Locked]: a slice of a tensor's moments (shard_state=True): leftover_from
//     (int64, one element: the index in this slice from which the whole tensor's last n mod 8 elements lie;
//     the slice's length when none do; negative reads as 0), then Step's nine; output: delta. The slices
//     together give the bits of Step on the whole tensor.
//   AdamOffloadApplyBucket[Nesterov][Locked]: a bucket of k >= 1 whole float32 tensors in host memory that
//     share one step's scalars, updated as AdamOffloadApply would update each, in one pass (one wake-up of
//     the pool for the lot): beta1_power, beta2_power, lr, beta1, beta2, eps, then the k parameters, the k
//     moment1s, the k moment2s and the k gradients (all float32; tensor i's four of one element count);
//     output: one float32, set to 0.
// 16-bit parameters with float32 master weights (custom_op_master.cpp; adam_master.h):
//   AdamOffloadMaster[Nesterov][Locked][Decay][Unscale]: param (float16 or bfloat16, read only), master,
//     moment1, moment2, beta1_power, beta2_power, lr, beta1, beta2, eps, weight_decay, grad_scale
//     (float32), gradient (param's dtype); output: the new parameter, of param's dtype. master, moment1
//     and moment2 are updated in place. Where param differs from the master rounded, it was written since
//     the last step and that element's master restarts from it. With Decay the gradient is first
//     g = master * weight_decay + g, with Unscale then g = g * grad_scale, both in float32 (MindSpore's
//     decay_weight and scale_grad on a float32 parameter).
//   AdamOffloadMasterApply[...]: the same inputs; param is written in place with the new value (the CPU
//     backend has no bfloat16 Assign to do it in the graph); output: one float32, set to 0.
//   AdamOffloadMasterSlice[...]: a slice of k elements of a tensor's master and moments (shard_state=True):
//     first a lead (int64, two elements): leftover_from, as AdamOffloadSlice's, and start, where the slice
//     begins in the gradient and in param; then Master's thirteen inputs, master and moments of k elements.
//     The gradient and param are either the slice itself (start 0) or the whole tensor (the CPU backend
//     cannot cut a bfloat16 slice); slice elements past the gradient's end (a start past it too) are
//     padding, left as they are, with 0 out. Output: the slice of the new parameter, k elements of param's
//     dtype or int16 (its bits, which the CPU backend's AllGather takes where it does not take bfloat16).
//   AdamOffloadMasterPut: param (float16 or bfloat16, written in place), the gathered slices (param's
//     dtype or int16, at least param's element count; the padding past it is ignored); output: one
//     float32, set to 0. Copies the bits (the CPU backend has no bfloat16 Assign).
// AdamW (MindSpore's AdamWeightDecay; adamw.h, custom_op_adamw.cpp), in four variants each: plain,
// Locked, Float32 and Float32Locked (no Nesterov form). Float32 computes adamw.h's AdamWRounding::kFloat32
// formula, the others kDouble; the inputs are the same:
//   AdamWOffloadStep[Locked]: param (float32, read only), moment1, moment2, lr, beta1, beta2, eps,
//     weight_decay (float32; the five scalars of at least one element), gradient (float32); output: the
//     new parameter, float32. The moments are updated in place; the graph assigns the output to the
//     parameter. Given slices of the same length (shard_state=True), it gives those elements' bits.
//   AdamWOffloadApply[Locked]: the same inputs; param is written in place; output: one float32, set to 0.
//   AdamWOffloadMaster[Locked], AdamWOffloadMasterApply[Locked]: param (float16 or bfloat16, read only;
//     MasterApply writes it), master, moment1, moment2, lr, beta1, beta2, eps, weight_decay (float32),
//     gradient (param's dtype); output as AdamOffloadMaster's and AdamOffloadMasterApply's.
//   AdamWOffloadMasterSlice[Locked]: a lead (int64, one element): start, as AdamOffloadMasterSlice's;
//     then Master's ten inputs; output as AdamOffloadMasterSlice's.
//   AdamWOffloadApplyBucket[Locked]: a bucket of k >= 1 whole float32 tensors in host memory, updated as
//     AdamWOffloadApply would update each, in one pass: lr, beta1, beta2, eps, then the k parameters, the k
//     moment1s, the k moment2s, the k weight_decays (one a tensor, of at least one element: the bucket's
//     parameters may decay differently) and the k gradients (all float32; tensor i's parameter, moments
//     and gradient of one element count); output: one float32, set to 0.
// Return codes (MindSpore reports a non-zero code as a failed launch), checked in this order:
//   0 success
//   1 wrong number of inputs and outputs: 10 for Step, 11 for Apply and Slice; 14 for Master and
//     MasterApply, 15 for MasterSlice; 3 for MasterPut; 7 + 4k (k >= 1) for ApplyBucket; AdamW: 10 for Step
//     and Apply, 11 for Master and MasterApply, 12 for MasterSlice, 5 + 5k (k >= 1) for ApplyBucket
//   2 a dtype other than the above (the lead: not int64; Master*: param not float16/bfloat16, or the
//     gradient, or the output without Apply, not of param's dtype, where MasterSlice also takes int16)
//   3 element counts differ: param (Apply), moment1, moment2, gradient and delta (Step, Slice); master,
//     moment1, moment2, gradient, param and the output (Master; MasterApply: an empty output;
//     MasterSlice: the gradient and param against each other, and a negative start); a scalar or a lead
//     too short; MasterPut: fewer gathered elements than param has, or an empty output; ApplyBucket: a
//     tensor's four against each other (AdamW: and its weight_decay empty), or an empty output
//   (AdamW's entries check the same things in the same order, and never return 4)
//   4 beta1_power is 1 (no step taken yet: the bias correction divides by zero)
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "adam.h"
#include "adamw.h"

namespace mso::aot {

enum Code : int { kOk = 0, kWrongCount = 1, kWrongDtype = 2, kWrongSize = 3, kNoStepYet = 4 };

// The variant an exported name fixes.
struct Flags {
  bool nesterov;
  bool use_locking;
  bool decay;
  bool unscale;
  bool float32 = false;  // AdamW: AdamWRounding::kFloat32 (adamw.h)
};

inline bool same(const char* dtype, const char* name) { return dtype != nullptr && std::strcmp(dtype, name) == 0; }

// One call's arguments: slot i is params[i], of ndims[i] dimensions shapes[i] and dtype name dtypes[i].
struct Args {
  int count;
  void** params;
  int* ndims;
  std::int64_t** shapes;
  const char** dtypes;

  // The arguments after the first `lead` ones, numbered from 0: an entry's shared layout past its lead.
  Args after(int lead) const { return Args{count - lead, params + lead, ndims + lead, shapes + lead, dtypes + lead}; }

  const char* dtype(int slot) const { return dtypes[slot]; }
  bool is(int slot, const char* name) const { return same(dtypes[slot], name); }
  bool all(int first, int last, const char* name) const {  // slots first..last, both included
    for (int i = first; i <= last; ++i) {
      if (!is(i, name)) return false;
    }
    return true;
  }

  std::int64_t elements(int slot) const {
    std::int64_t count = 1;
    for (int i = 0; i < ndims[slot]; ++i) count *= shapes[slot][i];
    return count;
  }
  bool filled(int first, int last) const {  // slots first..last each hold an element (the scalars)
    for (int i = first; i <= last; ++i) {
      if (elements(i) < 1) return false;
    }
    return true;
  }

  template <class T>
  T* data(int slot) const {
    return static_cast<T*>(params[slot]);
  }
  float scalar(int slot) const { return *data<const float>(slot); }
  std::int64_t int64(int slot, int i) const { return data<const std::int64_t>(slot)[i]; }
  std::size_t leftover_from(int slot) const {  // the lead's leftover_from; a negative one reads as 0
    const std::int64_t from = int64(slot, 0);
    return from < 0 ? 0 : static_cast<std::size_t>(from);
  }
  // The six hyper-parameters, which every layout takes in this order from `beta1_power` on:
  // beta1_power, beta2_power, lr, beta1, beta2, eps.
  AdamHyper hyper(int beta1_power, bool nesterov) const {
    return AdamHyper{scalar(beta1_power + 2), scalar(beta1_power + 3), scalar(beta1_power + 4),
                     scalar(beta1_power + 5), scalar(beta1_power),     scalar(beta1_power + 1), nesterov};
  }
  // AdamW's five, which its layouts take in this order from `lr` on: lr, beta1, beta2, eps, weight_decay.
  AdamWHyper adamw_hyper(int lr, const Flags& flags) const {
    return AdamWHyper{scalar(lr),     scalar(lr + 1), scalar(lr + 2), scalar(lr + 3), scalar(lr + 4),
                      adamw_rounding(flags.float32)};
  }
};

// Where a bucket entry's tensors lie: `scalars` shared scalars, then `columns` columns of k inputs each
// (column c of tensor i in slot first + c * k + i), then the output.
struct Bucket {
  int first;
  int k;
  int slot(int column, int i) const { return first + column * k + i; }
};

// Reads a bucket's layout (every input float32) and checks it in custom_op.h's order: the count, the
// dtypes, the shared scalars and the output each of one element at least, then each tensor's columns:
// those whose bit is set in `per_tensor_scalars` (a tensor's own scalar) of one element at least, the others
// of one element count. Returns kOk and fills `bucket`, or the code.
inline int read_bucket(const Args& call, int scalars, int columns, unsigned per_tensor_scalars, Bucket* bucket) {
  const int inputs = call.count - scalars - 1;
  if (inputs < columns || inputs % columns != 0) return kWrongCount;
  if (!call.all(0, call.count - 1, "float32")) return kWrongDtype;
  if (!call.filled(0, scalars - 1) || call.elements(call.count - 1) < 1) return kWrongSize;
  const Bucket b{scalars, inputs / columns};
  for (int i = 0; i < b.k; ++i) {
    std::int64_t n = -1;  // the element count of tensor i's first column that is not a scalar
    for (int column = 0; column < columns; ++column) {
      const std::int64_t count = call.elements(b.slot(column, i));
      if ((per_tensor_scalars >> column) & 1u) {
        if (count < 1) return kWrongSize;
      } else if (n < 0) {
        n = count;
      } else if (count != n) {
        return kWrongSize;
      }
    }
  }
  *bucket = b;
  return kOk;
}

}  // namespace mso::aot

// Defines the exported entry point `name` with the signature above; the body returns `...`, an
// expression over `args` (an mso::aot::Args).
#define MSO_AOT_ENTRY(name, ...)                                                                       \
  extern "C" __attribute__((visibility("default"))) int name(int nparam, void** params, int* ndims,     \
                                                             std::int64_t** shapes, const char** dtypes, \
                                                             void* /*stream*/, void* /*extra*/) {        \
    const ::mso::aot::Args args{nparam, params, ndims, shapes, dtypes};                                \
    return __VA_ARGS__;                                                                                \
  }

// kind##suffix, kind##Nesterov##suffix, kind##Locked##suffix and kind##NesterovLocked##suffix, each
// returning fn(args, its Flags, mode).
#define MSO_AOT_ENTRIES(kind, suffix, fn, mode, decay, unscale)                                       \
  MSO_AOT_ENTRY(kind##suffix, fn(args, ::mso::aot::Flags{false, false, decay, unscale}, mode))        \
  MSO_AOT_ENTRY(kind##Nesterov##suffix, fn(args, ::mso::aot::Flags{true, false, decay, unscale}, mode)) \
  MSO_AOT_ENTRY(kind##Locked##suffix, fn(args, ::mso::aot::Flags{false, true, decay, unscale}, mode))  \
  MSO_AOT_ENTRY(kind##NesterovLocked##suffix, fn(args, ::mso::aot::Flags{true, true, decay, unscale}, mode))

// AdamW's kind, kind##Locked, kind##Float32 and kind##Float32Locked (no Nesterov form), each returning
// fn(args, its Flags, mode).
#define MSO_AOT_ADAMW_ENTRIES(kind, fn, mode)                                                      \
  MSO_AOT_ENTRY(kind, fn(args, ::mso::aot::Flags{false, false, false, false, false}, mode))        \
  MSO_AOT_ENTRY(kind##Locked, fn(args, ::mso::aot::Flags{false, true, false, false, false}, mode)) \
  MSO_AOT_ENTRY(kind##Float32, fn(args, ::mso::aot::Flags{false, false, false, false, true}, mode)) \
  MSO_AOT_ENTRY(kind##Float32Locked, fn(args, ::mso::aot::Flags{false, true, false, false, true}, mode))
