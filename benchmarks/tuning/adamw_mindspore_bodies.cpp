// How far MindSpore 2.10's two float32 AdamWeightDecay bodies (nnacl's AdamWeightDecayFp32) are apart:
// the scalar loop every non-AVX-512 CPU runs, which csrc/adamw_body.h reproduces, against the AVX-512
// vector body, both written here from their disassembly with correctly rounded fmas, over random
// elements of tests/kernel/test_adamw_mindspore.py's distributions. Prints, per decay, the largest
// difference of m and v in ulps of their terms, of the parameter in units of
// lr * ulp(m's terms) / (sqrt(v') + eps) + ulp(max(|w|, |w'|, lr |u|)), and how many elements differ.
// No AVX-512 needed: docs/design.md ("AdamW on the CPU backend") quotes its output.
//   g++ -O2 -ffp-contract=off benchmarks/tuning/adamw_mindspore_bodies.cpp -o /tmp/bodies && /tmp/bodies
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>

namespace {

double ulp_of(double scale) { return std::ldexp(1.0, std::ilogb(scale) - 23); }

std::int64_t in_units(double difference, double unit) {
  return static_cast<std::int64_t>(std::ceil(std::fabs(difference) / unit));
}

}  // namespace

int main() {
  const float lr = 1e-2f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-6f;
  const float one_minus_beta1 = 1.0f - beta1, one_minus_beta2 = 1.0f - beta2;
  const long count = 20000000;
  for (const float decay : {0.0f, 0.05f}) {
    std::mt19937_64 rng(1);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::uniform_int_distribution<int> exponent(-4, 1);
    std::int64_t worst_w = 0, worst_m = 0, worst_v = 0;
    long differ_w = 0, differ_m = 0, differ_v = 0;
    for (long i = 0; i < count; ++i) {
      const float w = normal(rng), m = normal(rng) * 0.1f, v = std::fabs(normal(rng)) * 0.01f;
      const float g = normal(rng) * std::pow(10.0f, static_cast<float>(exponent(rng)));
      // the scalar loop
      const float m_s = std::fma(g - m, one_minus_beta1, m);
      const float v_s = std::fma(std::fma(g, g, -v), one_minus_beta2, v);
      const double u = double(m_s) / (std::sqrt(double(v_s)) + double(eps)) + double(w * decay);
      const float w_s = static_cast<float>(std::fma(-double(lr), u, double(w)));
      // the AVX-512 body
      const float m_v = std::fma(one_minus_beta1, g, beta1 * m);
      const float v_v = std::fma(g * g, one_minus_beta2, beta2 * v);
      const float u_v = std::fma(decay, w, m_v / (std::sqrt(v_v) + eps));
      const float w_v = std::fma(u_v, -lr, w);
      const double m_terms = std::fmax(std::fabs(beta1 * m) + std::fabs(one_minus_beta1 * g), std::fabs(m));
      const double v_terms = std::fmax(std::fabs(beta2 * v) + std::fabs(one_minus_beta2 * g * g), std::fabs(v));
      const double w_scale = std::fmax(std::fmax(std::fabs(w), std::fabs(w_s)), lr * std::fabs(u));
      const double w_unit = lr * ulp_of(m_terms) / (std::sqrt(double(v_s)) + eps) + ulp_of(w_scale);
      const std::int64_t dw = in_units(double(w_s) - w_v, w_unit);
      const std::int64_t dm = in_units(double(m_s) - m_v, ulp_of(m_terms));
      const std::int64_t dv = in_units(double(v_s) - v_v, ulp_of(v_terms));
      worst_w = std::max(worst_w, dw);
      worst_m = std::max(worst_m, dm);
      worst_v = std::max(worst_v, dv);
      differ_w += w_s != w_v;
      differ_m += m_s != m_v;
      differ_v += v_s != v_v;
    }
    std::printf("decay %g: parameter %lld units, %.2f%% differ; m %lld ulp of its terms, %.2f%%; "
                "v %lld ulp of its terms, %.2f%%\n",
                decay, static_cast<long long>(worst_w), 100.0 * differ_w / count, static_cast<long long>(worst_m),
                100.0 * differ_m / count, static_cast<long long>(worst_v), 100.0 * differ_v / count);
  }
}
