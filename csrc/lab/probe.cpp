// The bandwidth probe at every level, with the kernel's store variants: the same loops over AVX-512,
// AVX2 and scalar "vectors", so an AVX2-only CPU gets a streaming-store limit as fair as an AVX-512 one.
#include "lab/probe.h"

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "threadpool.h"
#include "tuning.h"

#pragma GCC push_options
#pragma GCC target("avx512f")
namespace mso::lab::avx512 {
struct V {
  using Reg = __m512;
  static constexpr std::size_t kWidth = 16;
  static Reg load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, Reg x) { _mm512_storeu_ps(p, x); }
  static void stream(float* p, Reg x) { _mm512_stream_ps(p, x); }
  static Reg add(Reg a, Reg b) { return _mm512_add_ps(a, b); }
  static Reg sub(Reg a, Reg b) { return _mm512_sub_ps(a, b); }
};
#include "lab/probe_body.h"
}  // namespace mso::lab::avx512
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2")
namespace mso::lab::avx2 {
struct V {
  using Reg = __m256;
  static constexpr std::size_t kWidth = 8;
  static Reg load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, Reg x) { _mm256_storeu_ps(p, x); }
  static void stream(float* p, Reg x) { _mm256_stream_ps(p, x); }
  static Reg add(Reg a, Reg b) { return _mm256_add_ps(a, b); }
  static Reg sub(Reg a, Reg b) { return _mm256_sub_ps(a, b); }
};
#include "lab/probe_body.h"
}  // namespace mso::lab::avx2
#pragma GCC pop_options

namespace mso::lab::scalar {
struct V {  // one float a "vector"; streaming is a vector-level matter, as in the kernel
  using Reg = float;
  static constexpr std::size_t kWidth = 1;
  static Reg load(const float* p) {  // memcpy: the mixed probe reads 16-bit streams through float*
    Reg x;
    std::memcpy(&x, p, sizeof x);
    return x;
  }
  static void store(float* p, Reg x) { std::memcpy(p, &x, sizeof x); }
  static void stream(float* p, Reg x) { store(p, x); }
  static Reg add(Reg a, Reg b) { return a + b; }
  static Reg sub(Reg a, Reg b) { return a - b; }
};
#include "lab/probe_body.h"
}  // namespace mso::lab::scalar

namespace mso::lab {
namespace {

struct Job {
  Pattern pattern;
  Isa isa;
  bool stream;
  float* m;
  float* v;
  const float* g;
  float* out;
};

void chunk(void* ctx, std::size_t begin, std::size_t len) {
  const Job& j = *static_cast<const Job*>(ctx);
  const auto fn = j.isa == Isa::kAvx512 ? avx512::probe : j.isa == Isa::kAvx2 ? avx2::probe : scalar::probe;
  fn(j.pattern, j.stream, j.m + begin, j.v + begin, j.g + begin, j.out + begin, len);
}

struct MixedJob {
  Isa isa;
  float* m;
  float* v;
  const std::uint16_t* g;
  float* p;
  std::uint16_t* out;
};

void mixed_chunk(void* ctx, std::size_t begin, std::size_t len) {
  const MixedJob& j = *static_cast<const MixedJob*>(ctx);
  const auto fn = j.isa == Isa::kAvx512 ? avx512::probe_mixed : j.isa == Isa::kAvx2 ? avx2::probe_mixed : scalar::probe_mixed;
  fn(j.m + begin, j.v + begin, j.g + begin, j.p + begin, j.out + begin, len);
}

}  // namespace

void bandwidth_probe_mixed(Isa isa, float* m, float* v, const std::uint16_t* g, float* p, std::uint16_t* out,
                           std::size_t n) {
  MixedJob job{isa, m, v, g, p, out};
  parallel_for(n, tuning().grain, mixed_chunk, &job);
}

void bandwidth_probe(Pattern pattern, Isa isa, bool stream, float* m, float* v, const float* g, float* out,
                     std::size_t n) {
  Job job{pattern, isa, stream, m, v, g, out};
  parallel_for(n, tuning().grain, chunk, &job);
}

}  // namespace mso::lab
