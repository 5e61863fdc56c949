// The aot entry points for 16-bit parameters with float32 master weights (see custom_op.cpp for the
// float32 ones; MindSpore's ops.Custom(func_type="aot") calls them on the CPU backend).
//
// AdamOffloadMaster[Nesterov][Locked][Decay][Unscale]: a float16 or bfloat16 parameter with a float32
//   master. Inputs, in this order: master, moment1, moment2, beta1_power, beta2_power, lr, beta1, beta2,
//   eps, weight_decay, grad_scale (float32), gradient (float16 or bfloat16); output: the new parameter,
//   of the gradient's dtype. master, moment1 and moment2 are updated in place. With Decay the gradient
//   is first g = master * weight_decay + g, with Unscale then g = g * grad_scale, both in float32
//   (MindSpore's decay_weight and scale_grad on a float32 parameter).
// Return codes: 0 success; 1 not 13 inputs and outputs (12 in, 1 out); 2 a float32 input is not float32, or the
//   gradient is not float16/bfloat16, or the output's dtype is not the gradient's; 3 master, moment1,
//   moment2, gradient and output differ in element count, or a scalar input is empty; 4 beta1_power is 1.
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

enum MasterSlot { kW, kMm, kMv, kMb1p, kMb2p, kMlr, kMb1, kMb2, kMeps, kMwd, kMscale, kMgrad, kMout, kMasterSlots };

int adam_offload_master(int nparam, void** params, int* ndims, std::int64_t** shapes, const char** dtypes,
                        bool nesterov, bool use_locking, bool decay, bool unscale) {
  if (nparam != kMasterSlots) return 1;
  for (int i = 0; i < kMgrad; ++i) {
    if (dtypes[i] == nullptr || std::strcmp(dtypes[i], "float32") != 0) return 2;
  }
  if (dtypes[kMgrad] == nullptr || dtypes[kMout] == nullptr || std::strcmp(dtypes[kMgrad], dtypes[kMout]) != 0) return 2;
  const bool f16 = std::strcmp(dtypes[kMgrad], "float16") == 0;
  if (!f16 && std::strcmp(dtypes[kMgrad], "bfloat16") != 0) return 2;
  const std::int64_t n = elements(ndims[kW], shapes[kW]);
  for (int slot : {kMm, kMv, kMgrad, kMout}) {
    if (elements(ndims[slot], shapes[slot]) != n) return 3;
  }
  for (int i = kMb1p; i <= kMscale; ++i) {
    if (elements(ndims[i], shapes[i]) < 1) return 3;
  }
  auto scalar = [&](int slot) { return *static_cast<const float*>(params[slot]); };
  const mso::AdamHyper h{scalar(kMlr), scalar(kMb1), scalar(kMb2), scalar(kMeps), scalar(kMb1p), scalar(kMb2p), nesterov};
  if (h.beta1_power == 1.0f) return 4;
  const mso::GradPrep prep{scalar(kMwd), scalar(kMscale), decay, unscale};
  mso::adam_master_run(static_cast<float*>(params[kW]), static_cast<float*>(params[kMm]),
                       static_cast<float*>(params[kMv]), static_cast<const std::uint16_t*>(params[kMgrad]),
                       static_cast<std::uint16_t*>(params[kMout]), static_cast<std::size_t>(n), h, prep,
                       f16 ? mso::Half::kFloat16 : mso::Half::kBFloat16, use_locking);
  return 0;
}

}  // namespace

#define MSO_MASTER_ENTRY(name, nesterov, use_locking, decay, unscale)                                    \
  extern "C" __attribute__((visibility("default"))) int name(int nparam, void** params, int* ndims,       \
                                                             std::int64_t** shapes, const char** dtypes, \
                                                             void* /*stream*/, void* /*extra*/) {        \
    return adam_offload_master(nparam, params, ndims, shapes, dtypes, nesterov, use_locking, decay, unscale); \
  }
#define MSO_MASTER_ENTRIES(suffix, decay, unscale)                                  \
  MSO_MASTER_ENTRY(AdamOffloadMaster##suffix, false, false, decay, unscale)         \
  MSO_MASTER_ENTRY(AdamOffloadMasterNesterov##suffix, true, false, decay, unscale)  \
  MSO_MASTER_ENTRY(AdamOffloadMasterLocked##suffix, false, true, decay, unscale)    \
  MSO_MASTER_ENTRY(AdamOffloadMasterNesterovLocked##suffix, true, true, decay, unscale)

MSO_MASTER_ENTRIES(, false, false)
MSO_MASTER_ENTRIES(Decay, true, false)
MSO_MASTER_ENTRIES(Unscale, false, true)
MSO_MASTER_ENTRIES(DecayUnscale, true, true)
