// The probe's loops, written once over a level's vector wrapper Vec: included by level_body.h in the
// lab build only, under the level's target, after adam_body.h (whose Vec and Reg they use). Four vectors
// of every stream are loaded before anything is stored, so the probe is not held back by a loop shape
// the kernel could avoid.
// No include guard: included once per level on purpose.

namespace mso {
namespace MSO_LEVEL {
namespace lab {
namespace {

constexpr std::size_t kBlock = 4;

template <bool kStream>
void probe_delta(float* m, float* v, const float* g, float* d, std::size_t n) {
  constexpr std::size_t w = Vec::kWidth;
  std::size_t i = 0;
  const auto one = [&](std::size_t k) {
    m[k] += g[k];
    v[k] += g[k];
    d[k] = m[k] - v[k];
  };
  if (kStream) {
    for (; i < n && (reinterpret_cast<std::uintptr_t>(d + i) & (w * sizeof(float) - 1)) != 0; ++i) one(i);
  }
  for (; i + kBlock * w <= n; i += kBlock * w) {
    Reg gs[kBlock], ms[kBlock], vs[kBlock];
    for (std::size_t b = 0; b < kBlock; ++b) gs[b] = Vec::load(g + i + b * w);
    for (std::size_t b = 0; b < kBlock; ++b) ms[b] = Vec::add(Vec::load(m + i + b * w), gs[b]);
    for (std::size_t b = 0; b < kBlock; ++b) vs[b] = Vec::add(Vec::load(v + i + b * w), gs[b]);
    for (std::size_t b = 0; b < kBlock; ++b) {
      Vec::store(m + i + b * w, ms[b]);
      Vec::store(v + i + b * w, vs[b]);
      if (kStream) {
        Vec::stream(d + i + b * w, Vec::sub(ms[b], vs[b]));
      } else {
        Vec::store(d + i + b * w, Vec::sub(ms[b], vs[b]));
      }
    }
  }
  for (; i < n; ++i) one(i);
  if (kStream) Vec::fence();
}

void probe_apply(float* m, float* v, const float* g, float* p, std::size_t n) {
  constexpr std::size_t w = Vec::kWidth;
  std::size_t i = 0;
  for (; i + kBlock * w <= n; i += kBlock * w) {
    Reg gs[kBlock], ms[kBlock], vs[kBlock], ps[kBlock];
    for (std::size_t b = 0; b < kBlock; ++b) gs[b] = Vec::load(g + i + b * w);
    for (std::size_t b = 0; b < kBlock; ++b) ms[b] = Vec::add(Vec::load(m + i + b * w), gs[b]);
    for (std::size_t b = 0; b < kBlock; ++b) vs[b] = Vec::add(Vec::load(v + i + b * w), gs[b]);
    for (std::size_t b = 0; b < kBlock; ++b) ps[b] = Vec::load(p + i + b * w);
    for (std::size_t b = 0; b < kBlock; ++b) {
      Vec::store(m + i + b * w, ms[b]);
      Vec::store(v + i + b * w, vs[b]);
      Vec::store(p + i + b * w, Vec::add(ps[b], Vec::sub(ms[b], vs[b])));
    }
  }
  for (; i < n; ++i) {
    m[i] += g[i];
    v[i] += g[i];
    p[i] += m[i] - v[i];
  }
}

// The master pass's pattern: read g16, p, m, v; write p, m, v, out16 (2+4+4+4 in, 4+4+4+2
// out). The 16-bit streams move as float registers of two elements each, half as many registers as the
// float32 streams; the caller fills g16 with bits whose pairs are normal floats (no denormal assists).
void probe_master(float* m, float* v, const std::uint16_t* g16, float* p, std::uint16_t* out16, std::size_t n) {
  constexpr std::size_t w = Vec::kWidth;
  constexpr std::size_t half = kBlock / 2;
  const float* g = reinterpret_cast<const float*>(g16);
  float* out = reinterpret_cast<float*>(out16);
  std::size_t i = 0;
  for (; i + kBlock * w <= n; i += kBlock * w) {
    Reg gs[half], ms[kBlock], vs[kBlock], ps[kBlock];
    for (std::size_t b = 0; b < half; ++b) gs[b] = Vec::load(g + i / 2 + b * w);
    for (std::size_t b = 0; b < kBlock; ++b) ms[b] = Vec::add(Vec::load(m + i + b * w), gs[b / 2]);
    for (std::size_t b = 0; b < kBlock; ++b) vs[b] = Vec::add(Vec::load(v + i + b * w), gs[b / 2]);
    for (std::size_t b = 0; b < kBlock; ++b) ps[b] = Vec::load(p + i + b * w);
    for (std::size_t b = 0; b < kBlock; ++b) {
      Vec::store(m + i + b * w, ms[b]);
      Vec::store(v + i + b * w, vs[b]);
      ps[b] = Vec::add(ps[b], Vec::sub(ms[b], vs[b]));
      Vec::store(p + i + b * w, ps[b]);
    }
    for (std::size_t b = 0; b < half; ++b) Vec::store(out + i / 2 + b * w, Vec::add(ps[2 * b], ps[2 * b + 1]));
  }
  for (; i < n; ++i) {
    m[i] += 1.0f;
    v[i] += 1.0f;
    p[i] += m[i] - v[i];
    out16[i] = g16[i];
  }
}

// This level's Kernels::probe (dispatch.h): the apply pattern, or the delta pattern with or without
// streaming stores; probe_master above is its Kernels::probe_master.
void probe(bool apply, bool stream, float* m, float* v, const float* g, float* out, std::size_t n) {
  if (apply) {
    probe_apply(m, v, g, out, n);
  } else if (stream) {
    probe_delta<true>(m, v, g, out, n);
  } else {
    probe_delta<false>(m, v, g, out, n);
  }
}

}  // namespace
}  // namespace lab
}  // namespace MSO_LEVEL
}  // namespace mso
