// The in-cache ceiling of the Adam pass: how many elements per second one core can put through the
// exact vsqrtps + vdivps that every element needs (we match MindSpore's bits, so no rsqrt/rcp
// approximations), next to the AVX-512 kernel itself on 4096 elements that stay in L1/L2.
//
//   g++ -O3 -ffp-contract=off -fno-math-errno -Icsrc benchmarks/tuning/sqrt_div_bound.cpp
//       csrc/adam_avx512.cpp csrc/dispatch.cpp -o /tmp/sdb
//   /tmp/sdb
//
// Needs an AVX-512 CPU (the functions carry their own target; no -march=native).
#include <immintrin.h>

#include <chrono>
#include <cstdio>
#include <vector>

#include "dispatch.h"

// GCC 12 warns inside its own intrinsics (the undefined pass-through lanes), as in csrc/adam_avx512.cpp.
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace {

// Eight independent chains, so only the throughput of the divide/sqrt unit limits the loop.
__attribute__((target("avx512f"))) float sqrt_div(int iters) {
  __m512 acc[8];
  for (int j = 0; j < 8; ++j) acc[j] = _mm512_set1_ps(1.0f + j);
  const __m512 eps = _mm512_set1_ps(1e-8f), c = _mm512_set1_ps(-1e-3f), v = _mm512_set1_ps(0.37f);
  for (int i = 0; i < iters; ++i) {
    for (int j = 0; j < 8; ++j) {
      acc[j] = _mm512_div_ps(_mm512_mul_ps(c, acc[j]), _mm512_add_ps(_mm512_sqrt_ps(_mm512_add_ps(v, acc[j])), eps));
    }
  }
  __m512 sum = acc[0];
  for (int j = 1; j < 8; ++j) sum = _mm512_add_ps(sum, acc[j]);
  float lanes[16];
  _mm512_storeu_ps(lanes, sum);
  float total = 0.0f;
  for (float x : lanes) total += x;
  return total;
}

}  // namespace

int main() {
  using clock = std::chrono::steady_clock;
  const std::size_t n = 4096;
  std::vector<float> m(n, 0.01f), v(n, 1e-4f), g(n, 0.02f), d(n);
  const mso::AdamCoeffs k{0.9f, 0.999f, 0.1f, 0.001f, -1e-3f, 1e-8f, ~std::size_t{0}};  // in cache: no prefetch
  const mso::AdamChunk adam_chunk = mso::find_level("avx512")->kernels.adam;
  for (int rep = 0; rep < 5; ++rep) {
    const int iters = 2000000;
    auto t = clock::now();
    volatile float sink = sqrt_div(iters);
    (void)sink;
    double s = std::chrono::duration<double>(clock::now() - t).count();
    std::printf("sqrt+div alone: %.2f G elements/s/core   ", iters * 8.0 * 16 / s / 1e9);
    const int calls = 200000;
    t = clock::now();
    for (int i = 0; i < calls; ++i) adam_chunk(m.data(), v.data(), g.data(), d.data(), n, k, false, mso::Output::kStore);
    s = std::chrono::duration<double>(clock::now() - t).count();
    std::printf("avx512 adam_chunk, 4096 in cache: %.2f G elements/s/core\n", calls * double(n) / s / 1e9);
  }
}
