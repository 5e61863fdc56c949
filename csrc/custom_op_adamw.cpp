// The custom-op entry points of AdamW (MindSpore's AdamWeightDecay): AdamWOffloadStep, AdamWOffloadApply,
// AdamWOffloadApplyBucket, AdamWOffloadMaster, AdamWOffloadMasterApply and AdamWOffloadMasterSlice, each
// plain, Locked, Float32 and Float32Locked. Their inputs, outputs and return codes: custom_op.h.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "adamw.h"
#include "custom_op.h"

namespace {

using mso::aot::Args;
using mso::aot::Flags;
using mso::aot::same;

// float32: the parameter comes first (the decay reads it).
enum Slot { kParam, kMoment1, kMoment2, kLr, kBeta1, kBeta2, kEps, kWeightDecay, kGrad, kOut, kSlots };

int adamw_offload(const Args& a, const Flags& flags, bool apply) {
  if (a.count != kSlots) return mso::aot::kWrongCount;
  if (!a.all(0, a.count - 1, "float32")) return mso::aot::kWrongDtype;
  const std::int64_t n = a.elements(kParam);
  if (a.elements(kMoment1) != n || a.elements(kMoment2) != n || a.elements(kGrad) != n) return mso::aot::kWrongSize;
  if (apply ? a.elements(kOut) < 1 : a.elements(kOut) != n) return mso::aot::kWrongSize;
  if (!a.filled(kLr, kWeightDecay)) return mso::aot::kWrongSize;
  auto* param = a.data<float>(kParam);
  if (apply) *a.data<float>(kOut) = 0.0f;
  mso::adamw_run(param, a.data<float>(kMoment1), a.data<float>(kMoment2), a.data<const float>(kGrad),
                 apply ? param : a.data<float>(kOut), static_cast<std::size_t>(n), a.adamw_hyper(kLr, flags),
                 flags.use_locking);
  return mso::aot::kOk;
}

// 16-bit parameters with float32 masters, after MasterSlice's lead.
enum MasterSlot { kHalfParam, kMaster, kM1, kM2, kMLr, kMBeta1, kMBeta2, kMEps, kMWeightDecay, kHalfGrad, kHalfOut,
                  kMasterSlots };

bool is_half(const char* dtype) { return same(dtype, "float16") || same(dtype, "bfloat16"); }

enum class Mode { kReturn, kApply, kSlice };

int adamw_offload_master(const Args& call, const Flags& flags, Mode mode) {
  const bool apply = mode == Mode::kApply;
  const bool slice = mode == Mode::kSlice;
  if (call.count != kMasterSlots + (slice ? 1 : 0)) return mso::aot::kWrongCount;
  if (slice) {
    if (!call.is(0, "int64")) return mso::aot::kWrongDtype;
    if (call.elements(0) < 1) return mso::aot::kWrongSize;
  }
  const Args a = call.after(slice ? 1 : 0);
  const std::int64_t start = slice ? call.int64(0, 0) : 0;
  const char* half = a.dtype(kHalfParam);
  if (!is_half(half) || !a.is(kHalfGrad, half) || !a.all(kMaster, kMWeightDecay, "float32")) {
    return mso::aot::kWrongDtype;
  }
  if (!a.is(kHalfOut, apply ? "float32" : half) && !(slice && a.is(kHalfOut, "int16"))) return mso::aot::kWrongDtype;
  const std::int64_t n = a.elements(kMaster);
  if (a.elements(kM1) != n || a.elements(kM2) != n) return mso::aot::kWrongSize;
  const std::int64_t grad_n = a.elements(kHalfGrad);
  if (a.elements(kHalfParam) != grad_n) return mso::aot::kWrongSize;
  if (slice ? start < 0 : grad_n != n) return mso::aot::kWrongSize;
  const std::int64_t count = slice ? std::max<std::int64_t>(0, std::min(n, grad_n - start)) : n;
  if (apply ? a.elements(kHalfOut) < 1 : a.elements(kHalfOut) != n) return mso::aot::kWrongSize;
  if (!a.filled(kMLr, kMWeightDecay)) return mso::aot::kWrongSize;
  const std::int64_t offset = count > 0 ? start : 0;
  auto* param = a.data<std::uint16_t>(kHalfParam);
  if (apply) *a.data<float>(kHalfOut) = 0.0f;
  auto* out = apply ? param : a.data<std::uint16_t>(kHalfOut);
  std::fill(out + count, out + n, std::uint16_t{0});
  mso::adamw_master_run(a.data<float>(kMaster), a.data<float>(kM1), a.data<float>(kM2),
                        a.data<const std::uint16_t>(kHalfGrad) + offset, param + offset, out,
                        static_cast<std::size_t>(count), a.adamw_hyper(kMLr, flags),
                        same(half, "float16") ? mso::Half::kFloat16 : mso::Half::kBFloat16, flags.use_locking);
  return mso::aot::kOk;
}

// The bucket's layout: lr, beta1, beta2, eps, then k parameters, moment1s, moment2s, weight_decays and
// gradients, the output.
enum BucketColumn { kBucketParam, kBucketMoment1, kBucketMoment2, kBucketDecay, kBucketGrad, kBucketColumns };
constexpr int kBucketScalars = 4;

int adamw_offload_bucket(const Args& call, const Flags& flags, bool /*unused*/) {
  mso::aot::Bucket b{};
  const int code = mso::aot::read_bucket(call, kBucketScalars, kBucketColumns, 1u << kBucketDecay, &b);
  if (code != mso::aot::kOk) return code;
  std::vector<mso::AdamWTensor> bucket(static_cast<std::size_t>(b.k));
  for (int i = 0; i < b.k; ++i) {
    const int param = b.slot(kBucketParam, i);
    bucket[i] = mso::AdamWTensor{call.data<float>(param), call.data<float>(b.slot(kBucketMoment1, i)),
                                 call.data<float>(b.slot(kBucketMoment2, i)), call.data<const float>(b.slot(kBucketGrad, i)),
                                 static_cast<std::size_t>(call.elements(param)), call.scalar(b.slot(kBucketDecay, i))};
  }
  // The shared four are adamw_hyper's first four; its weight_decay (read past them) is each tensor's instead.
  const mso::AdamWHyper h{call.scalar(0), call.scalar(1), call.scalar(2), call.scalar(3), 0.0f,
                          mso::adamw_rounding(flags.float32)};
  *call.data<float>(call.count - 1) = 0.0f;
  mso::adamw_run_many(bucket.data(), bucket.size(), h, flags.use_locking);
  return mso::aot::kOk;
}

}  // namespace

MSO_AOT_ADAMW_ENTRIES(AdamWOffloadApplyBucket, adamw_offload_bucket, false)
MSO_AOT_ADAMW_ENTRIES(AdamWOffloadStep, adamw_offload, false)
MSO_AOT_ADAMW_ENTRIES(AdamWOffloadApply, adamw_offload, true)
MSO_AOT_ADAMW_ENTRIES(AdamWOffloadMaster, adamw_offload_master, Mode::kReturn)
MSO_AOT_ADAMW_ENTRIES(AdamWOffloadMasterApply, adamw_offload_master, Mode::kApply)
MSO_AOT_ADAMW_ENTRIES(AdamWOffloadMasterSlice, adamw_offload_master, Mode::kSlice)
