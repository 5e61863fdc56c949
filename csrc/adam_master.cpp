// The 16-bit-parameter pass over a whole buffer: level, threads and the optional lock, as adam.cpp.
#include "adam_master.h"

#include <algorithm>
#include <cstdint>
#include <mutex>

#include "dispatch.h"
#include "half.h"
#include "threadpool.h"
#include "tuning.h"

namespace mso {
namespace {

std::mutex& lock_for(const float* state) {  // its own stripes: a master pass never waits on adam.cpp's
  static std::mutex stripes[64];
  return stripes[(reinterpret_cast<std::uintptr_t>(state) >> 6) % 64];
}

MasterKernel master_kernel_for(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return avx512::adam_master_step;
    case Isa::kAvx2: return avx2::adam_master_step;
    default: return scalar::adam_master_step;
  }
}

struct Job {
  float* master;
  float* m;
  float* v;
  const std::uint16_t* grad;
  const std::uint16_t* param;  // or null (adam_master.h)
  std::uint16_t* out;
  AdamCoeffs k;
  GradPrep prep;
  MasterKernel kernel;
  bool nesterov;
  Half half;
};

void run_chunk(void* ctx, std::size_t begin, std::size_t len) {
  const Job& j = *static_cast<const Job*>(ctx);
  j.kernel(j.master + begin, j.m + begin, j.v + begin, j.grad + begin, j.param ? j.param + begin : nullptr,
           j.out + begin, len, j.k, j.prep, j.nesterov, j.half);
}

float widen(std::uint16_t x, Half half) { return half == Half::kFloat16 ? half_to_float(x) : bfloat16_to_float(x); }

std::uint16_t narrow(float x, Half half) { return half == Half::kFloat16 ? float_to_half(x) : float_to_bfloat16(x); }

// Elements from `from` on, as the float32 path rounds a tensor's last n mod 8 (adam_leftover.cpp:
// MindSpore's scalar loop), so the master stays bit-identical to a float32 parameter there too. A slice
// can hold more than 8 such elements (its padding past the tensor's end), so they go 8 at a time.
void master_leftover(const Job& j, std::size_t from, std::size_t n) {
  for (std::size_t at = from; at < n; at += kMindSporeVectorWidth) {
    const std::size_t rest = std::min(kMindSporeVectorWidth, n - at);
    float* w = j.master + at;
    float g32[kMindSporeVectorWidth];
    for (std::size_t i = 0; i < rest; ++i) {
      // the vector levels' follow(): compared as widened bits, so every level keeps the same elements
      if (j.param != nullptr && float_bits(widen(narrow(w[i], j.half), j.half)) !=
                                    float_bits(widen(j.param[at + i], j.half))) {
        w[i] = widen(j.param[at + i], j.half);
      }
      float gi = widen(j.grad[at + i], j.half);
      if (j.prep.decay) gi = w[i] * j.prep.weight_decay + gi;
      if (j.prep.unscale) gi = gi * j.prep.grad_scale;
      g32[i] = gi;
    }
    adam_leftover(j.m + at, j.v + at, g32, w, rest, j.k, j.nesterov, true);
    for (std::size_t i = 0; i < rest; ++i) j.out[at + i] = narrow(w[i], j.half);
  }
}

}  // namespace

void adam_master_run(float* master, float* m, float* v, const std::uint16_t* grad, const std::uint16_t* param,
                     std::uint16_t* out, std::size_t n, const AdamHyper& h, const GradPrep& p, Half half,
                     bool use_locking, std::size_t leftover_from) {
  if (n == 0) return;
  const Job job{master, m, v, grad, param, out, adam_coeffs(h), p, master_kernel_for(active_isa()), h.nesterov, half};
  std::unique_lock<std::mutex> lock;
  if (use_locking) lock = std::unique_lock<std::mutex>(lock_for(m));
  const std::size_t body =
      leftover_from == kWholeTensor ? n - n % kMindSporeVectorWidth : std::min(leftover_from, n);
  parallel_for(body, tuning().grain, run_chunk, const_cast<Job*>(&job));
  master_leftover(job, body, n);
}

}  // namespace mso
