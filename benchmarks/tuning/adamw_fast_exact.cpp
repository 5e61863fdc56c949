// Can AdamW's "double" rounding (csrc/adamw.h) be had at the float32 formula's speed? This times, in the
// caches and on one thread, four ways to compute the new weight of AdamW on 8 lanes (AVX2 + FMA):
//   double   the kernel's: widen, double sqrt and divide, one rounding at the end (the reference bits);
//   float32  MindSpore's AVX-512 body's formula, all float32 (other bits: the speed to aim at);
//   refined  float32 sqrt and divide refined with error-free transforms (two-sum, fma residuals,
//            rcpps + one Newton step) to about 2^-40, the new weight as a float pair, an error bound,
//            and the double path for the whole block where the bound straddles a float32 rounding
//            boundary: the double bits, always;
//   sqrt-fix float32 sqrt corrected by its exact residual, then the double divide and the same check.
// Both checked ways must give the double bits on every element (printed: elements that differ, blocks
// that fell back). docs/design.md ("Two roundings") quotes the figures.
//
//   g++ -O3 -mavx2 -mfma -o /tmp/adamw_fast_exact benchmarks/tuning/adamw_fast_exact.cpp && /tmp/adamw_fast_exact
#include <immintrin.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

namespace {

constexpr int kBlock = 4;  // registers a block, each stage written across all of them
struct Hyper { float one_minus_beta1, one_minus_beta2, beta1, beta2, lr, eps, decay; };

inline __m256d lo(__m256 x) { return _mm256_cvtps_pd(_mm256_castps256_ps128(x)); }
inline __m256d hi(__m256 x) { return _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1)); }
inline __m256 narrow(__m256d a, __m256d b) { return _mm256_set_m128(_mm256_cvtpd_ps(b), _mm256_cvtpd_ps(a)); }
inline __m256 set(float x) { return _mm256_set1_ps(x); }

__attribute__((always_inline)) inline __m256 weight_double(const Hyper& k, __m256 m, __m256 v, __m256 w) {
  const __m256d neg_lr = _mm256_set1_pd(-double(k.lr)), eps = _mm256_set1_pd(double(k.eps));
  const __m256 decayed = _mm256_mul_ps(w, set(k.decay));
  const __m256d a = _mm256_add_pd(_mm256_div_pd(lo(m), _mm256_add_pd(_mm256_sqrt_pd(lo(v)), eps)), lo(decayed));
  const __m256d b = _mm256_add_pd(_mm256_div_pd(hi(m), _mm256_add_pd(_mm256_sqrt_pd(hi(v)), eps)), hi(decayed));
  return narrow(_mm256_fmadd_pd(neg_lr, a, lo(w)), _mm256_fmadd_pd(neg_lr, b, hi(w)));
}

inline __m256 two_sum(__m256 a, __m256 b, __m256& err) {  // a + b == sum + err exactly
  const __m256 sum = _mm256_add_ps(a, b), bb = _mm256_sub_ps(sum, a);
  err = _mm256_add_ps(_mm256_sub_ps(a, _mm256_sub_ps(sum, bb)), _mm256_sub_ps(b, bb));
  return sum;
}

inline __m256 recip(__m256 x) {  // about 2^-22 relative
  const __m256 r = _mm256_rcp_ps(x);
  return _mm256_mul_ps(r, _mm256_fnmadd_ps(x, r, set(2.0f)));
}

inline __m256 absf(__m256 x) { return _mm256_andnot_ps(set(-0.0f), x); }

// The refined float32 way over a block; `bad` collects lanes the bound cannot decide.
__attribute__((always_inline)) inline void weight_refined(const Hyper& k, const __m256* m, const __m256* v, const __m256* w, __m256* out, __m256& bad) {
  const float tiny = float(std::fabs(double(k.lr)) * 0x1p-108 + 0x1p-145);
  __m256 s[kBlock], t[kBlock], den[kBlock], q[kBlock], ql[kBlock], wd[kBlock], ah[kBlock], rh[kBlock], rl[kBlock];
  for (int b = 0; b < kBlock; ++b) s[b] = _mm256_sqrt_ps(v[b]);
  for (int b = 0; b < kBlock; ++b) den[b] = two_sum(s[b], set(k.eps), t[b]);
  for (int b = 0; b < kBlock; ++b) q[b] = _mm256_div_ps(m[b], den[b]);
  for (int b = 0; b < kBlock; ++b) {  // den's low part: the eps sum's error plus sqrt's residual / (2 sqrt)
    const __m256 residual = _mm256_fnmadd_ps(s[b], s[b], v[b]);
    const __m256 fix = _mm256_mul_ps(residual, recip(_mm256_max_ps(_mm256_add_ps(s[b], s[b]), set(0x1p-120f))));
    t[b] = _mm256_add_ps(t[b], fix);
  }
  for (int b = 0; b < kBlock; ++b) {  // q's low part: the division's exact residual, over den
    const __m256 residual = _mm256_fnmadd_ps(q[b], den[b], m[b]);
    ql[b] = _mm256_mul_ps(_mm256_fnmadd_ps(q[b], t[b], residual), recip(den[b]));
  }
  for (int b = 0; b < kBlock; ++b) wd[b] = _mm256_mul_ps(w[b], set(k.decay));
  for (int b = 0; b < kBlock; ++b) {  // w - lr*q - lr*wd - lr*ql, as rh + rl
    ah[b] = _mm256_mul_ps(set(k.lr), q[b]);
    const __m256 al = _mm256_fmsub_ps(set(k.lr), q[b], ah[b]);
    const __m256 bh = _mm256_mul_ps(set(k.lr), wd[b]), bl = _mm256_fmsub_ps(set(k.lr), wd[b], bh);
    __m256 e1, e2;
    const __m256 s1 = two_sum(w[b], _mm256_xor_ps(ah[b], set(-0.0f)), e1);
    rh[b] = two_sum(s1, _mm256_xor_ps(bh, set(-0.0f)), e2);
    rl[b] = _mm256_sub_ps(_mm256_add_ps(e1, e2), _mm256_add_ps(_mm256_add_ps(al, bl), _mm256_mul_ps(set(k.lr), ql[b])));
    const __m256 bound = _mm256_fmadd_ps(absf(ah[b]), set(0x1p-38f),
                                         _mm256_fmadd_ps(_mm256_add_ps(absf(w[b]), absf(bh)), set(0x1p-44f), set(tiny)));
    const __m256 below = _mm256_add_ps(rh[b], _mm256_sub_ps(rl[b], bound));
    const __m256 above = _mm256_add_ps(rh[b], _mm256_add_ps(rl[b], bound));
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(below, above, _CMP_NEQ_UQ));
    out[b] = below;
  }
}

// The sqrt-fix way over a block.
__attribute__((always_inline)) inline void weight_sqrt_fix(const Hyper& k, const __m256* m, const __m256* v, const __m256* w, __m256* out, __m256& bad) {
  const __m256d eps = _mm256_set1_pd(double(k.eps)), neg_lr = _mm256_set1_pd(-double(k.lr));
  const __m256d rel = _mm256_set1_pd(std::fabs(double(k.lr)) * 0x1p-33), floor = _mm256_set1_pd(0x1p-140);
  const __m256d absd = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7FFFFFFFFFFFFFFFLL)), ulp = _mm256_set1_pd(0x1p-50);
  for (int b = 0; b < kBlock; ++b) {
    const __m256 s = _mm256_sqrt_ps(v[b]);
    const __m256 fix = _mm256_mul_ps(_mm256_fnmadd_ps(s, s, v[b]), _mm256_rcp_ps(_mm256_max_ps(_mm256_add_ps(s, s), set(0x1p-120f))));
    const __m256 wd = _mm256_mul_ps(w[b], set(k.decay));
    __m256d below[2], above[2];
    const __m256d ss[2] = {lo(s), hi(s)}, ff[2] = {lo(fix), hi(fix)}, mm[2] = {lo(m[b]), hi(m[b])};
    const __m256d dd[2] = {lo(wd), hi(wd)}, ww[2] = {lo(w[b]), hi(w[b])};
    for (int h = 0; h < 2; ++h) {
      const __m256d q = _mm256_div_pd(mm[h], _mm256_add_pd(_mm256_add_pd(ss[h], eps), ff[h]));
      const __m256d r = _mm256_fmadd_pd(neg_lr, _mm256_add_pd(q, dd[h]), ww[h]);
      const __m256d size = _mm256_add_pd(_mm256_and_pd(q, absd), _mm256_and_pd(dd[h], absd));
      const __m256d bound = _mm256_fmadd_pd(size, rel, _mm256_fmadd_pd(_mm256_and_pd(r, absd), ulp, floor));
      below[h] = _mm256_sub_pd(r, bound);
      above[h] = _mm256_add_pd(r, bound);
    }
    out[b] = narrow(below[0], below[1]);
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(out[b], narrow(above[0], above[1]), _CMP_NEQ_UQ));
  }
}

enum class Way { kDouble, kFloat32, kRefined, kSqrtFix };
long fallbacks = 0;

template <Way way>
void pass_of(const Hyper& k, float* w, float* m, float* v, const float* g, std::size_t n) {
  for (std::size_t i = 0; i + 8 * kBlock <= n; i += 8 * kBlock) {
    __m256 gs[kBlock], ws[kBlock], ms[kBlock], vs[kBlock], out[kBlock];
    for (int b = 0; b < kBlock; ++b) {
      gs[b] = _mm256_loadu_ps(g + i + 8 * b);
      ws[b] = _mm256_loadu_ps(w + i + 8 * b);
      ms[b] = _mm256_loadu_ps(m + i + 8 * b);
      vs[b] = _mm256_loadu_ps(v + i + 8 * b);
    }
    if constexpr (way == Way::kFloat32) {
      for (int b = 0; b < kBlock; ++b) {
        ms[b] = _mm256_fmadd_ps(set(k.one_minus_beta1), gs[b], _mm256_mul_ps(set(k.beta1), ms[b]));
        vs[b] = _mm256_fmadd_ps(_mm256_mul_ps(gs[b], gs[b]), set(k.one_minus_beta2), _mm256_mul_ps(set(k.beta2), vs[b]));
        const __m256 u = _mm256_fmadd_ps(set(k.decay), ws[b], _mm256_div_ps(ms[b], _mm256_add_ps(_mm256_sqrt_ps(vs[b]), set(k.eps))));
        out[b] = _mm256_fmadd_ps(u, set(-k.lr), ws[b]);
      }
    } else {
      for (int b = 0; b < kBlock; ++b) {  // the kernel's moments (adamw.h)
        ms[b] = _mm256_fmadd_ps(_mm256_sub_ps(gs[b], ms[b]), set(k.one_minus_beta1), ms[b]);
        vs[b] = _mm256_fmadd_ps(_mm256_fmsub_ps(gs[b], gs[b], vs[b]), set(k.one_minus_beta2), vs[b]);
      }
      __m256 bad = _mm256_setzero_ps();
      if (way == Way::kRefined) weight_refined(k, ms, vs, ws, out, bad);
      if (way == Way::kSqrtFix) weight_sqrt_fix(k, ms, vs, ws, out, bad);
      if (way == Way::kDouble || _mm256_movemask_ps(bad) != 0) {
        if (way != Way::kDouble) ++fallbacks;
        for (int b = 0; b < kBlock; ++b) out[b] = weight_double(k, ms[b], vs[b], ws[b]);
      }
    }
    for (int b = 0; b < kBlock; ++b) {
      _mm256_storeu_ps(m + i + 8 * b, ms[b]);
      _mm256_storeu_ps(v + i + 8 * b, vs[b]);
      _mm256_storeu_ps(w + i + 8 * b, out[b]);
    }
  }
}

void pass(Way way, const Hyper& k, float* w, float* m, float* v, const float* g, std::size_t n) {
  switch (way) {
    case Way::kDouble: return pass_of<Way::kDouble>(k, w, m, v, g, n);
    case Way::kFloat32: return pass_of<Way::kFloat32>(k, w, m, v, g, n);
    case Way::kRefined: return pass_of<Way::kRefined>(k, w, m, v, g, n);
    case Way::kSqrtFix: return pass_of<Way::kSqrtFix>(k, w, m, v, g, n);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 8192;  // a multiple of 32
  const int reps = argc > 2 ? std::atoi(argv[2]) : 500;
  const Hyper k{0.1f, 0.001f, 0.9f, 0.999f, 1e-3f, 1e-6f, 0.01f};
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> w(n), m(n), v(n), g(n);
  for (std::size_t i = 0; i < n; ++i) {  // transformer-like: weights ~0.05, every 97th all zero
    const bool zero = i % 97 == 0;
    w[i] = zero ? 0.0f : 0.05f * normal(rng);
    m[i] = zero ? 0.0f : 1e-3f * normal(rng);
    v[i] = zero ? 0.0f : 1e-5f * std::fabs(normal(rng));
  }
  // The checked ways against the double way, 200 steps on the same gradients.
  for (Way way : {Way::kRefined, Way::kSqrtFix}) {
    std::vector<float> wa = w, ma = m, va = v, wb = w, mb = m, vb = v;
    long differ = 0;
    fallbacks = 0;
    std::mt19937 grng(2);
    for (int step = 0; step < 200; ++step) {
      for (std::size_t i = 0; i < n; ++i) g[i] = 0.01f * normal(grng) * (i % 5 == 0 ? 100.0f : 1.0f);
      pass(Way::kDouble, k, wa.data(), ma.data(), va.data(), g.data(), n);
      pass(way, k, wb.data(), mb.data(), vb.data(), g.data(), n);
      for (std::size_t i = 0; i < n; ++i) differ += std::memcmp(&wa[i], &wb[i], sizeof(float)) != 0;
    }
    std::printf("%-8s elements that differ from double: %ld; blocks that fell back: %ld of %ld\n",
                way == Way::kRefined ? "refined" : "sqrt-fix", differ, fallbacks, 200L * long(n / 32));
  }
  // Times, interleaved, best of 15 rounds.
  const char* names[] = {"double", "float32", "refined", "sqrt-fix"};
  double best[4] = {1e30, 1e30, 1e30, 1e30};
  for (int round = 0; round < 15; ++round) {
    for (int way = 0; way < 4; ++way) {
      const auto start = std::chrono::steady_clock::now();
      for (int r = 0; r < reps; ++r) pass(Way(way), k, w.data(), m.data(), v.data(), g.data(), n);
      const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
      best[way] = std::fmin(best[way], ns / reps / double(n));
    }
  }
  for (int way = 0; way < 4; ++way) {
    std::printf("%-8s %.3f ns an element (%.2f of double)\n", names[way], best[way], best[way] / best[0]);
  }
}
