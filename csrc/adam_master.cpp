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
  std::uint16_t* out;
  AdamCoeffs k;
  GradPrep prep;
  MasterKernel kernel;
  bool nesterov;
  Half half;
};

void run_chunk(void* ctx, std::size_t begin, std::size_t len) {
  const Job& j = *static_cast<const Job*>(ctx);
  j.kernel(j.master + begin, j.m + begin, j.v + begin, j.grad + begin, j.out + begin, len, j.k, j.prep, j.nesterov,
           j.half);
}

// The last n mod 8 elements, as the float32 path rounds them (adam_leftover.cpp: MindSpore's scalar
// loop), so the master stays bit-identical to a float32 parameter there too.
void master_leftover(float* w, float* m, float* v, const std::uint16_t* g, std::uint16_t* out, std::size_t rest,
                     const AdamCoeffs& k, const GradPrep& p, bool nesterov, Half half) {
  float g32[kMindSporeVectorWidth];
  for (std::size_t i = 0; i < rest; ++i) {
    float gi = half == Half::kFloat16 ? half_to_float(g[i]) : bfloat16_to_float(g[i]);
    if (p.decay) gi = w[i] * p.weight_decay + gi;
    if (p.unscale) gi = gi * p.grad_scale;
    g32[i] = gi;
  }
  adam_leftover(m, v, g32, w, rest, k, nesterov, true);
  for (std::size_t i = 0; i < rest; ++i) out[i] = half == Half::kFloat16 ? float_to_half(w[i]) : float_to_bfloat16(w[i]);
}

}  // namespace

void adam_master_run(float* master, float* m, float* v, const std::uint16_t* grad, std::uint16_t* out, std::size_t n,
                     const AdamHyper& h, const GradPrep& p, Half half, bool use_locking, std::size_t leftover_from) {
  if (n == 0) return;
  Job job{master, m, v, grad, out, adam_coeffs(h), p, master_kernel_for(active_isa()), h.nesterov, half};
  std::unique_lock<std::mutex> lock;
  if (use_locking) lock = std::unique_lock<std::mutex>(lock_for(m));
  const std::size_t body =
      leftover_from == kWholeTensor ? n - n % kMindSporeVectorWidth : std::min(leftover_from, n);
  parallel_for(body, tuning().grain, run_chunk, &job);
  master_leftover(master + body, m + body, v + body, grad + body, out + body, n - body, job.k, p, h.nesterov, half);
}

}  // namespace mso
