// One Adam step over a whole buffer: coefficients, level, threads and the optional lock.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <mutex>

#include "adam.h"
#include "dispatch.h"
#include "threadpool.h"
#include "tuning.h"

namespace mso {
namespace {

std::mutex& lock_for(const float* state) {
  static std::mutex stripes[64];
  return stripes[(reinterpret_cast<std::uintptr_t>(state) >> 6) % 64];
}

struct Job {
  float* m;
  float* v;
  const float* grad;
  float* out;
  AdamCoeffs k;
  AdamKernel kernel;
  bool nesterov;
  Output output;
};

void run_chunk(void* ctx, std::size_t begin, std::size_t len) {
  const Job& j = *static_cast<const Job*>(ctx);
  j.kernel(j.m + begin, j.v + begin, j.grad + begin, j.out + begin, len, j.k, j.nesterov, j.output);
}

}  // namespace

AdamCoeffs adam_coeffs(const AdamHyper& h) {
  // MindSpore's AdamNoUpdateParam: lr = lr * sqrt(1 - beta2_power) / (1 - beta1_power), in float.
  const float lr_t = h.lr * std::sqrt(1.0f - h.beta2_power) / (1.0f - h.beta1_power);
  return AdamCoeffs{h.beta1, h.beta2, 1.0f - h.beta1, 1.0f - h.beta2, -lr_t, h.eps, tuning().prefetch_min};
}

void adam_run(float* m, float* v, const float* grad, float* out, std::size_t n, const AdamHyper& h,
              bool use_locking, bool apply, std::size_t leftover_from) {
  if (n == 0) return;
  const Tuning t = tuning();
  const bool stream = n >= t.stream_min && (reinterpret_cast<std::uintptr_t>(out) & 3) == 0;
  const Output output = apply ? Output::kApply : stream ? Output::kStream : Output::kStore;
  Job job{m, v, grad, out, adam_coeffs(h), kernel_for(active_isa()), h.nesterov, output};
  // MindSpore's body covers whole groups of 8 from the start; the rest it rounds its own way.
  const std::size_t body =
      leftover_from == kWholeTensor ? n - n % kMindSporeVectorWidth : std::min(leftover_from, n);
  std::unique_lock<std::mutex> lock;
  if (use_locking) lock = std::unique_lock<std::mutex>(lock_for(m));
  parallel_for(body, t.grain, run_chunk, &job);
  adam_leftover(m + body, v + body, grad + body, out + body, n - body, job.k, h.nesterov, apply);
}

}  // namespace mso
