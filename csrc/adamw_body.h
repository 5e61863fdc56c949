// The AdamW loop body (adamw.h's two formulas), written once for every level; included by level_body.h
// after adam_master_body.h, in the same namespace (no include guard), whose kBlock and Narrow it uses.
// Beyond adam_body.h's list, Vec provides `wide` (a register's lanes as doubles), widen/narrow (exact,
// and rounded to nearest), and add, div, sqrt and fma on wide: MindSpore's scalar loop computes the
// step in double (AdamWRounding::kDouble), and every level does the same, lane for lane. kFloat32 needs
// only the float operations Adam's body uses. The rounding is a template parameter of the loops, picked
// once a chunk, so neither loop tests it per element.
#ifndef MSO_LEVEL
#error "define MSO_LEVEL and its Vec, and include adam_master_body.h, before including adamw_body.h"
#endif

namespace mso {
namespace MSO_LEVEL {
namespace {

struct WConsts {
  Reg one_minus_beta1, one_minus_beta2, beta1, beta2, minus_one, decay, neg_lr_f, eps_f;
  Vec::wide neg_lr, eps;
  bool far;  // long enough to prefetch ahead
};

WConsts wconsts(const AdamWCoeffs& c, std::size_t n) {
  return WConsts{Vec::set1(c.one_minus_beta1), Vec::set1(c.one_minus_beta2), Vec::set1(c.beta1), Vec::set1(c.beta2),
                 Vec::set1(-1.0f), Vec::set1(c.decay), Vec::set1(-c.lr), Vec::set1(c.eps),
                 Vec::widen(Vec::set1(-c.lr)),  Vec::widen(Vec::set1(c.eps)), n >= c.prefetch_min};
}

// One AdamW update of m and v; returns the new parameter, rounded as adamw.h says for kRounding.
template <AdamWRounding kRounding>
inline Reg adamw_update(const WConsts& k, Reg g, Reg w, Reg& m, Reg& v) {
  if (kRounding == AdamWRounding::kFloat32) {
    m = Vec::fma(k.one_minus_beta1, g, Vec::mul(k.beta1, m));
    v = Vec::fma(Vec::mul(g, g), k.one_minus_beta2, Vec::mul(k.beta2, v));
    const Reg step = Vec::fma(k.decay, w, Vec::div(m, Vec::add(Vec::sqrt(v), k.eps_f)));
    return Vec::fma(step, k.neg_lr_f, w);
  }
  m = Vec::fma(Vec::sub(g, m), k.one_minus_beta1, m);
  v = Vec::fma(Vec::fma(g, g, Vec::mul(v, k.minus_one)), k.one_minus_beta2, v);
  const Vec::wide step = Vec::div(Vec::widen(m), Vec::add(Vec::sqrt(Vec::widen(v)), k.eps));
  const Vec::wide decayed = Vec::add(step, Vec::widen(Vec::mul(w, k.decay)));
  return Vec::narrow(Vec::fma(k.neg_lr, decayed, Vec::widen(w)));
}

inline void adamw_prefetch(const float* w, const float* m, const float* v, const void* g, std::size_t g_bytes) {
  for (std::size_t line = 0; line < kBlock * Vec::kWidth; line += 16) {  // one prefetch per 64-byte line
    Vec::prefetch(reinterpret_cast<const float*>(static_cast<const char*>(g) + (kPrefetchAhead + line) * g_bytes));
    Vec::prefetch(w + kPrefetchAhead + line);
    Vec::prefetch(m + kPrefetchAhead + line);
    Vec::prefetch(v + kPrefetchAhead + line);
  }
}

// kCount whole registers of every stream, every load before any store (so `out` may be `w`).
template <AdamWRounding kRounding, std::size_t kCount = kBlock>
inline void adamw_block(const WConsts& k, const float* w, float* m, float* v, const float* g, float* out) {
  constexpr std::size_t width = Vec::kWidth;
  Reg gs[kCount], ws[kCount], ms[kCount], vs[kCount];
  for (std::size_t b = 0; b < kCount; ++b) gs[b] = Vec::load(g + b * width);
  for (std::size_t b = 0; b < kCount; ++b) ws[b] = Vec::load(w + b * width);
  for (std::size_t b = 0; b < kCount; ++b) ms[b] = Vec::load(m + b * width);
  for (std::size_t b = 0; b < kCount; ++b) vs[b] = Vec::load(v + b * width);
  for (std::size_t b = 0; b < kCount; ++b) ws[b] = adamw_update<kRounding>(k, gs[b], ws[b], ms[b], vs[b]);
  for (std::size_t b = 0; b < kCount; ++b) Vec::store(m + b * width, ms[b]);
  for (std::size_t b = 0; b < kCount; ++b) Vec::store(v + b * width, vs[b]);
  for (std::size_t b = 0; b < kCount; ++b) Vec::store(out + b * width, ws[b]);
}

// The master kind: w is the master (restarted where `param` was written), out the 16-bit parameter.
template <AdamWRounding kRounding, Half kHalf, std::size_t kCount = kBlock>
inline void adamw_master_block(const WConsts& k, float* w, float* m, float* v, const std::uint16_t* g,
                               const std::uint16_t* param, std::uint16_t* out) {
  constexpr std::size_t width = Vec::kWidth;
  Reg gs[kCount], ws[kCount], ms[kCount], vs[kCount];
  for (std::size_t b = 0; b < kCount; ++b) gs[b] = Narrow<kHalf>::load(g + b * width);
  for (std::size_t b = 0; b < kCount; ++b) ws[b] = Vec::load(w + b * width);
  if (param != nullptr) {
    for (std::size_t b = 0; b < kCount; ++b) ws[b] = Narrow<kHalf>::follow(ws[b], param + b * width);
  }
  for (std::size_t b = 0; b < kCount; ++b) ms[b] = Vec::load(m + b * width);
  for (std::size_t b = 0; b < kCount; ++b) vs[b] = Vec::load(v + b * width);
  for (std::size_t b = 0; b < kCount; ++b) ws[b] = adamw_update<kRounding>(k, gs[b], ws[b], ms[b], vs[b]);
  for (std::size_t b = 0; b < kCount; ++b) Vec::store(w + b * width, ws[b]);
  for (std::size_t b = 0; b < kCount; ++b) Vec::store(m + b * width, ms[b]);
  for (std::size_t b = 0; b < kCount; ++b) Vec::store(v + b * width, vs[b]);
  for (std::size_t b = 0; b < kCount; ++b) Narrow<kHalf>::store(out + b * width, ws[b]);
}

template <AdamWRounding kRounding, Half kHalf>
void run_adamw_master(float* w, float* m, float* v, const std::uint16_t* g, const std::uint16_t* param,
                      std::uint16_t* out, std::size_t n, const WConsts& k) {
  constexpr std::size_t width = Vec::kWidth;
  std::size_t i = 0;
  for (; i + kBlock * width <= n; i += kBlock * width) {
    if (k.far) adamw_prefetch(w + i, m + i, v + i, g + i, sizeof(std::uint16_t));
    adamw_master_block<kRounding, kHalf>(k, w + i, m + i, v + i, g + i, param ? param + i : param, out + i);
  }
  for (; i + width <= n; i += width) {
    adamw_master_block<kRounding, kHalf, 1>(k, w + i, m + i, v + i, g + i, param ? param + i : param, out + i);
  }
  if (i < n) {  // fewer than a register: the same instructions on copies of the lanes that exist
    const std::size_t rest = n - i;
    std::uint16_t g16[width] = {};
    std::uint16_t param16[width] = {};  // lanes past the end: 0 against 0, kept
    std::uint16_t out16[width];
    float w32[width] = {}, m32[width] = {}, v32[width] = {};
    std::memcpy(g16, g + i, rest * sizeof(std::uint16_t));
    if (param != nullptr) std::memcpy(param16, param + i, rest * sizeof(std::uint16_t));
    std::memcpy(w32, w + i, rest * sizeof(float));
    std::memcpy(m32, m + i, rest * sizeof(float));
    std::memcpy(v32, v + i, rest * sizeof(float));
    adamw_master_block<kRounding, kHalf, 1>(k, w32, m32, v32, g16, param ? param16 : nullptr, out16);
    std::memcpy(w + i, w32, rest * sizeof(float));
    std::memcpy(m + i, m32, rest * sizeof(float));
    std::memcpy(v + i, v32, rest * sizeof(float));
    std::memcpy(out + i, out16, rest * sizeof(std::uint16_t));
  }
}

template <AdamWRounding kRounding>
void run_adamw(const float* w, float* m, float* v, const float* grad, float* out, std::size_t n, const WConsts& k) {
  constexpr std::size_t width = Vec::kWidth;
  std::size_t i = 0;
  for (; i + kBlock * width <= n; i += kBlock * width) {
    if (k.far) adamw_prefetch(w + i, m + i, v + i, grad + i, sizeof(float));
    adamw_block<kRounding>(k, w + i, m + i, v + i, grad + i, out + i);
  }
  for (; i + width <= n; i += width) adamw_block<kRounding, 1>(k, w + i, m + i, v + i, grad + i, out + i);
  if (i < n) {  // the same update on the lanes of the tail only
    const auto lanes = Vec::first(n - i);
    Reg mv = Vec::load(m + i, lanes);
    Reg vv = Vec::load(v + i, lanes);
    const Reg wv = adamw_update<kRounding>(k, Vec::load(grad + i, lanes), Vec::load(w + i, lanes), mv, vv);
    Vec::store(m + i, mv, lanes);
    Vec::store(v + i, vv, lanes);
    Vec::store(out + i, wv, lanes);
  }
}

}  // namespace

// This level's AdamWChunk (adamw.h).
void adamw_chunk(const float* w, float* m, float* v, const float* grad, float* out, std::size_t n,
                 const AdamWCoeffs& c) {
  const WConsts k = wconsts(c, n);
  if (c.rounding == AdamWRounding::kFloat32) {
    run_adamw<AdamWRounding::kFloat32>(w, m, v, grad, out, n, k);
  } else {
    run_adamw<AdamWRounding::kDouble>(w, m, v, grad, out, n, k);
  }
}

// This level's AdamWMasterChunk (adamw.h).
void adamw_master_chunk(float* master, float* m, float* v, const std::uint16_t* grad, const std::uint16_t* param,
                        std::uint16_t* out, std::size_t n, const AdamWCoeffs& c, Half half) {
  const WConsts k = wconsts(c, n);
  const bool f32 = c.rounding == AdamWRounding::kFloat32;
  if (half == Half::kFloat16) {
    (f32 ? run_adamw_master<AdamWRounding::kFloat32, Half::kFloat16>
         : run_adamw_master<AdamWRounding::kDouble, Half::kFloat16>)(master, m, v, grad, param, out, n, k);
  } else {
    (f32 ? run_adamw_master<AdamWRounding::kFloat32, Half::kBFloat16>
         : run_adamw_master<AdamWRounding::kDouble, Half::kBFloat16>)(master, m, v, grad, param, out, n, k);
  }
}

}  // namespace MSO_LEVEL
}  // namespace mso
