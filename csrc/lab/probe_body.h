// The probe's loops, written once over a level's vector type V (included inside each level's namespace
// in probe.cpp, under that level's target). Four vectors of every stream are loaded before anything is
// stored, so the probe is not held back by a loop shape the kernel could avoid.
// No include guard: included once per level on purpose.

constexpr std::size_t kBlock = 4;

template <bool kStream>
void probe_delta(float* m, float* v, const float* g, float* d, std::size_t n) {
  constexpr std::size_t w = V::kWidth;
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
    typename V::Reg gs[kBlock], ms[kBlock], vs[kBlock];
    for (std::size_t b = 0; b < kBlock; ++b) gs[b] = V::load(g + i + b * w);
    for (std::size_t b = 0; b < kBlock; ++b) ms[b] = V::add(V::load(m + i + b * w), gs[b]);
    for (std::size_t b = 0; b < kBlock; ++b) vs[b] = V::add(V::load(v + i + b * w), gs[b]);
    for (std::size_t b = 0; b < kBlock; ++b) {
      V::store(m + i + b * w, ms[b]);
      V::store(v + i + b * w, vs[b]);
      if (kStream) {
        V::stream(d + i + b * w, V::sub(ms[b], vs[b]));
      } else {
        V::store(d + i + b * w, V::sub(ms[b], vs[b]));
      }
    }
  }
  for (; i < n; ++i) one(i);
  if (kStream) _mm_sfence();
}

void probe_apply(float* m, float* v, const float* g, float* p, std::size_t n) {
  constexpr std::size_t w = V::kWidth;
  std::size_t i = 0;
  for (; i + kBlock * w <= n; i += kBlock * w) {
    typename V::Reg gs[kBlock], ms[kBlock], vs[kBlock], ps[kBlock];
    for (std::size_t b = 0; b < kBlock; ++b) gs[b] = V::load(g + i + b * w);
    for (std::size_t b = 0; b < kBlock; ++b) ms[b] = V::add(V::load(m + i + b * w), gs[b]);
    for (std::size_t b = 0; b < kBlock; ++b) vs[b] = V::add(V::load(v + i + b * w), gs[b]);
    for (std::size_t b = 0; b < kBlock; ++b) ps[b] = V::load(p + i + b * w);
    for (std::size_t b = 0; b < kBlock; ++b) {
      V::store(m + i + b * w, ms[b]);
      V::store(v + i + b * w, vs[b]);
      V::store(p + i + b * w, V::add(ps[b], V::sub(ms[b], vs[b])));
    }
  }
  for (; i < n; ++i) {
    m[i] += g[i];
    v[i] += g[i];
    p[i] += m[i] - v[i];
  }
}

// The 16-bit-parameter pass's pattern: read g16, p, m, v; write p, m, v, out16 (2+4+4+4 in, 4+4+4+2
// out). The 16-bit streams move as float registers of two elements each, half as many registers as the
// float32 streams; the caller fills g16 with bits whose pairs are normal floats (no denormal assists).
void probe_mixed(float* m, float* v, const std::uint16_t* g16, float* p, std::uint16_t* out16, std::size_t n) {
  constexpr std::size_t w = V::kWidth;
  constexpr std::size_t half = kBlock / 2;
  const float* g = reinterpret_cast<const float*>(g16);
  float* out = reinterpret_cast<float*>(out16);
  std::size_t i = 0;
  for (; i + kBlock * w <= n; i += kBlock * w) {
    typename V::Reg gs[half], ms[kBlock], vs[kBlock], ps[kBlock];
    for (std::size_t b = 0; b < half; ++b) gs[b] = V::load(g + i / 2 + b * w);
    for (std::size_t b = 0; b < kBlock; ++b) ms[b] = V::add(V::load(m + i + b * w), gs[b / 2]);
    for (std::size_t b = 0; b < kBlock; ++b) vs[b] = V::add(V::load(v + i + b * w), gs[b / 2]);
    for (std::size_t b = 0; b < kBlock; ++b) ps[b] = V::load(p + i + b * w);
    for (std::size_t b = 0; b < kBlock; ++b) {
      V::store(m + i + b * w, ms[b]);
      V::store(v + i + b * w, vs[b]);
      ps[b] = V::add(ps[b], V::sub(ms[b], vs[b]));
      V::store(p + i + b * w, ps[b]);
    }
    for (std::size_t b = 0; b < half; ++b) V::store(out + i / 2 + b * w, V::add(ps[2 * b], ps[2 * b + 1]));
  }
  for (; i < n; ++i) {
    m[i] += 1.0f;
    v[i] += 1.0f;
    p[i] += m[i] - v[i];
    out16[i] = g16[i];
  }
}

void probe(Pattern pattern, bool stream, float* m, float* v, const float* g, float* out, std::size_t n) {
  if (pattern == Pattern::kApply) {
    probe_apply(m, v, g, out, n);
  } else if (stream) {
    probe_delta<true>(m, v, g, out, n);
  } else {
    probe_delta<false>(m, v, g, out, n);
  }
}
