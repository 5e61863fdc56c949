// The custom-op entry points for 16-bit parameters with float32 master weights: AdamOffloadMaster,
// AdamOffloadMasterApply and AdamOffloadMasterSlice, each in sixteen variants, and AdamOffloadMasterPut.
// Their inputs, outputs and return codes: custom_op.h.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "adam_master.h"
#include "custom_op.h"

namespace {

using mso::aot::Args;
using mso::aot::Flags;
using mso::aot::same;

// The layout every entry shares, after MasterSlice's lead. The 16-bit parameter comes first: the pass
// reads it (adam_master.h).
enum Slot {
  kParam, kMaster, kMoment1, kMoment2, kBeta1Power, kBeta2Power, kLr, kBeta1, kBeta2, kEps, kWeightDecay,
  kGradScale, kGrad, kOut, kSlots
};

bool is_half(const char* dtype) { return same(dtype, "float16") || same(dtype, "bfloat16"); }

// Return: the new parameter comes back as the output; Apply: written in place; Slice: a slice's.
enum class Mode { kReturn, kApply, kSlice };

int adam_offload_master(const Args& call, const Flags& flags, Mode mode) {
  const bool apply = mode == Mode::kApply;
  const bool slice = mode == Mode::kSlice;
  if (call.count != kSlots + (slice ? 1 : 0)) return mso::aot::kWrongCount;
  if (slice) {
    if (!call.is(0, "int64")) return mso::aot::kWrongDtype;
    if (call.elements(0) < 2) return mso::aot::kWrongSize;
  }
  const Args a = call.after(slice ? 1 : 0);
  const std::int64_t start = slice ? call.int64(0, 1) : 0;
  const char* half = a.dtype(kParam);
  if (!is_half(half) || !a.is(kGrad, half) || !a.all(kMaster, kGradScale, "float32")) return mso::aot::kWrongDtype;
  if (!a.is(kOut, apply ? "float32" : half) && !(slice && a.is(kOut, "int16"))) return mso::aot::kWrongDtype;
  const std::int64_t n = a.elements(kMaster);
  if (a.elements(kMoment1) != n || a.elements(kMoment2) != n) return mso::aot::kWrongSize;
  // Slice: the gradient's (and param's) elements from start on (at most n) are the slice's; the rest is
  // padding.
  const std::int64_t grad_n = a.elements(kGrad);
  if (a.elements(kParam) != grad_n) return mso::aot::kWrongSize;
  if (slice ? start < 0 : grad_n != n) return mso::aot::kWrongSize;
  const std::int64_t count = slice ? std::max<std::int64_t>(0, std::min(n, grad_n - start)) : n;
  if (apply ? a.elements(kOut) < 1 : a.elements(kOut) != n) return mso::aot::kWrongSize;
  if (!a.filled(kBeta1Power, kGradScale)) return mso::aot::kWrongSize;
  const mso::AdamHyper h = a.hyper(kBeta1Power, flags.nesterov);
  if (h.beta1_power == 1.0f) return mso::aot::kNoStepYet;
  const mso::GradPrep prep{a.scalar(kWeightDecay), a.scalar(kGradScale), flags.decay, flags.unscale};
  const std::int64_t offset = count > 0 ? start : 0;
  auto* param = a.data<std::uint16_t>(kParam);
  if (apply) *a.data<float>(kOut) = 0.0f;
  auto* out = apply ? param : a.data<std::uint16_t>(kOut);
  std::fill(out + count, out + n, std::uint16_t{0});
  mso::adam_master_run(a.data<float>(kMaster), a.data<float>(kMoment1), a.data<float>(kMoment2),
                       a.data<const std::uint16_t>(kGrad) + offset, param + offset, out, static_cast<std::size_t>(count),
                       h, prep, same(half, "float16") ? mso::Half::kFloat16 : mso::Half::kBFloat16, flags.use_locking,
                       slice ? call.leftover_from(0) : mso::kWholeTensor);
  return mso::aot::kOk;
}

int put_gathered(const Args& a) {
  if (a.count != 3) return mso::aot::kWrongCount;
  if (!is_half(a.dtype(0)) || !(a.is(1, a.dtype(0)) || a.is(1, "int16")) || !a.is(2, "float32")) {
    return mso::aot::kWrongDtype;
  }
  const std::int64_t n = a.elements(0);
  if (a.elements(1) < n || a.elements(2) < 1) return mso::aot::kWrongSize;
  std::memcpy(a.data<void>(0), a.data<const void>(1), static_cast<std::size_t>(n) * sizeof(std::uint16_t));
  *a.data<float>(2) = 0.0f;
  return mso::aot::kOk;
}

}  // namespace

#define MSO_MASTER_KIND(kind, mode)                                             \
  MSO_AOT_ENTRIES(kind, , adam_offload_master, mode, false, false)             \
  MSO_AOT_ENTRIES(kind, Decay, adam_offload_master, mode, true, false)         \
  MSO_AOT_ENTRIES(kind, Unscale, adam_offload_master, mode, false, true)       \
  MSO_AOT_ENTRIES(kind, DecayUnscale, adam_offload_master, mode, true, true)

MSO_MASTER_KIND(AdamOffloadMaster, Mode::kReturn)
MSO_MASTER_KIND(AdamOffloadMasterApply, Mode::kApply)
MSO_MASTER_KIND(AdamOffloadMasterSlice, Mode::kSlice)
MSO_AOT_ENTRY(AdamOffloadMasterPut, put_gathered(args))
