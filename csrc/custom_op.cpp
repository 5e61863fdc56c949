// The custom-op entry points for float32 parameters: AdamOffloadStep, AdamOffloadApply,
// AdamOffloadSlice and AdamOffloadApplyBucket, each in four variants. Their inputs, outputs and return codes: custom_op.h.
#include <cstdint>
#include <vector>

#include "adam.h"
#include "custom_op.h"

namespace {

using mso::aot::Args;
using mso::aot::Flags;

// The layout every entry shares, after its lead input (if any).
enum Slot { kMoment1, kMoment2, kBeta1Power, kBeta2Power, kLr, kBeta1, kBeta2, kEps, kGrad, kOut, kSlots };

// What comes before the shared layout.
enum class Lead { kNone, kParam, kLeftoverFrom };

int adam_offload(const Args& call, const Flags& flags, Lead lead) {
  const bool apply = lead == Lead::kParam;
  const int leads = lead == Lead::kNone ? 0 : 1;
  if (call.count != kSlots + leads) return mso::aot::kWrongCount;
  const bool index_lead = lead == Lead::kLeftoverFrom;
  if ((index_lead && !call.is(0, "int64")) || !call.all(index_lead ? 1 : 0, call.count - 1, "float32")) {
    return mso::aot::kWrongDtype;
  }
  if (index_lead && call.elements(0) < 1) return mso::aot::kWrongSize;
  const Args a = call.after(leads);
  const std::int64_t n = a.elements(kMoment1);
  if (a.elements(kMoment2) != n || a.elements(kGrad) != n) return mso::aot::kWrongSize;
  if (apply ? call.elements(0) != n : a.elements(kOut) != n) return mso::aot::kWrongSize;
  if (!a.filled(kBeta1Power, kEps)) return mso::aot::kWrongSize;
  const mso::AdamHyper h = a.hyper(kBeta1Power, flags.nesterov);
  if (h.beta1_power == 1.0f) return mso::aot::kNoStepYet;
  if (apply && a.elements(kOut) >= 1) *a.data<float>(kOut) = 0.0f;
  mso::adam_run(a.data<float>(kMoment1), a.data<float>(kMoment2), a.data<const float>(kGrad),
                apply ? call.data<float>(0) : a.data<float>(kOut), static_cast<std::size_t>(n), h, flags.use_locking,
                apply, index_lead ? call.leftover_from(0) : mso::kWholeTensor);
  return mso::aot::kOk;
}

// The bucket's layout: the six scalars, then k parameters, k moment1s, k moment2s, k gradients, the output.
enum BucketColumn { kBucketParam, kBucketMoment1, kBucketMoment2, kBucketGrad, kBucketColumns };
constexpr int kBucketScalars = 6;

int adam_offload_bucket(const Args& call, const Flags& flags, bool /*unused*/) {
  mso::aot::Bucket b{};
  if (const int code = mso::aot::read_bucket(call, kBucketScalars, kBucketColumns, 0u, &b)) return code;
  std::vector<mso::AdamTensor> bucket(static_cast<std::size_t>(b.k));
  for (int i = 0; i < b.k; ++i) {
    const int param = b.slot(kBucketParam, i);
    bucket[i] = mso::AdamTensor{call.data<float>(b.slot(kBucketMoment1, i)), call.data<float>(b.slot(kBucketMoment2, i)),
                                call.data<const float>(b.slot(kBucketGrad, i)), call.data<float>(param),
                                static_cast<std::size_t>(call.elements(param))};
  }
  const mso::AdamHyper h = call.hyper(0, flags.nesterov);
  if (h.beta1_power == 1.0f) return mso::aot::kNoStepYet;
  *call.data<float>(call.count - 1) = 0.0f;
  mso::adam_run_many(bucket.data(), bucket.size(), h, flags.use_locking, true);
  return mso::aot::kOk;
}

}  // namespace

MSO_AOT_ENTRIES(AdamOffloadApplyBucket, , adam_offload_bucket, false, false, false)
MSO_AOT_ENTRIES(AdamOffloadStep, , adam_offload, Lead::kNone, false, false)
MSO_AOT_ENTRIES(AdamOffloadApply, , adam_offload, Lead::kParam, false, false)
MSO_AOT_ENTRIES(AdamOffloadSlice, , adam_offload, Lead::kLeftoverFrom, false, false)
