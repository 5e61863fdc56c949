// The memory-bandwidth limit for benchmarks: the kernel's access pattern (read g, m, v; write m, v, delta)
// with almost no arithmetic, threaded the same way. GCC's function multi-versioning picks the widest
// vectors this CPU has for the plain loop.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "probe.h"
#include "threadpool.h"
#include "tuning.h"

namespace mso {
namespace {

__attribute__((target_clones("avx512f", "avx2", "default")))
void touch(float* m, float* v, const float* g, float* d, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    const float mi = m[i] + g[i];
    const float vi = v[i] + g[i];
    m[i] = mi;
    v[i] = vi;
    d[i] = mi - vi;
  }
}

// Streaming stores need the instruction itself, so this one is AVX-512 only, with the plain loop
// as the fallback on other CPUs.
__attribute__((target("avx512f")))
void touch_stream_avx512(float* m, float* v, const float* g, float* d, std::size_t n) {
  std::size_t i = 0;
  for (; i < n && (reinterpret_cast<std::uintptr_t>(d + i) & 63) != 0; ++i) {
    m[i] += g[i];
    v[i] += g[i];
    d[i] = m[i] - v[i];
  }
  for (; i + 16 <= n; i += 16) {
    const __m512 gi = _mm512_loadu_ps(g + i);
    const __m512 mi = _mm512_add_ps(_mm512_loadu_ps(m + i), gi);
    const __m512 vi = _mm512_add_ps(_mm512_loadu_ps(v + i), gi);
    _mm512_storeu_ps(m + i, mi);
    _mm512_storeu_ps(v + i, vi);
    _mm512_stream_ps(d + i, _mm512_sub_ps(mi, vi));
  }
  _mm_sfence();
  touch(m + i, v + i, g + i, d + i, n - i);
}

void touch_stream(float* m, float* v, const float* g, float* d, std::size_t n) {
  static const bool avx512 = __builtin_cpu_supports("avx512f");
  if (avx512 && (reinterpret_cast<std::uintptr_t>(d) & 3) == 0) {
    touch_stream_avx512(m, v, g, d, n);
  } else {
    touch(m, v, g, d, n);
  }
}

struct ProbeJob {
  float* m;
  float* v;
  const float* g;
  float* d;
  bool stream;
};

void probe_chunk(void* ctx, std::size_t begin, std::size_t len) {
  const ProbeJob& j = *static_cast<const ProbeJob*>(ctx);
  (j.stream ? touch_stream : touch)(j.m + begin, j.v + begin, j.g + begin, j.d + begin, len);
}

}  // namespace

void bandwidth_probe(float* m, float* v, const float* g, float* d, std::size_t n, bool stream) {
  ProbeJob job{m, v, g, d, stream};
  parallel_for(n, tuning().grain, probe_chunk, &job);
}

}  // namespace mso
