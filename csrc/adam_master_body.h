// The master pass (16-bit parameters, float32 master weights), written once for every level on top of
// adam_body.h's update; included by level_body.h right after it, in the same namespace (no include guard).
// Vec adds full-register 16-bit loads and stores, load_f16/store_f16 and load_bf16/store_bf16 (widening
// exactly; narrowing to nearest even, with half.h's bits at every level), round_f16/round_bf16 (the same
// rounding, widened back in registers) and where_same(a, b, x, y): x in the lanes where a and b have the
// same bits, y elsewhere. The tail goes through a zero-filled stack copy of the 16-bit lanes, since x86
// has no masked 16-bit load below AVX512BW.
#ifndef MSO_LEVEL
#error "define MSO_LEVEL and its Vec, and include adam_body.h, before including adam_master_body.h"
#endif

namespace mso {
namespace MSO_LEVEL {
namespace {

template <Half kHalf>
struct Narrow {
  static Reg load(const std::uint16_t* p) { return kHalf == Half::kFloat16 ? Vec::load_f16(p) : Vec::load_bf16(p); }
  static void store(std::uint16_t* p, Reg x) {
    if (kHalf == Half::kFloat16) {
      Vec::store_f16(p, x);
    } else {
      Vec::store_bf16(p, x);
    }
  }
  static Reg round(Reg x) { return kHalf == Half::kFloat16 ? Vec::round_f16(x) : Vec::round_bf16(x); }
  // The master restarted where the parameter was written since the last pass: lanes where `param`
  // differs from the master rounded take the parameter, widened exactly (adam_master.h).
  static Reg follow(Reg w, const std::uint16_t* param) {
    const Reg now = load(param);
    return Vec::where_same(round(w), now, w, now);
  }
};

struct Prep {
  Reg weight_decay, grad_scale;
  bool far;  // the chunk is long enough to prefetch ahead (AdamCoeffs::prefetch_min)
};

// g as the float32 path sees it after decay_weight and scale_grad, then Adam, then master += delta
// rounded as assign_add would.
template <bool kNesterov, bool kDecay, bool kUnscale>
inline void master_update(const Consts& k, const Prep& p, Reg g, Reg& w, Reg& m, Reg& v) {
  if (kDecay) g = Vec::add(Vec::mul(w, p.weight_decay), g);
  if (kUnscale) g = Vec::mul(g, p.grad_scale);
  w = Vec::add(w, update<kNesterov>(k, g, m, v));
}

// kCount whole registers of every stream, all loads before any store, as adam_body.h's block(): the
// loads of a block are in flight together while the divide/sqrt unit works.
// `param` (null: not checked) may be `out`: every load of a block comes before its first store.
template <Half kHalf, bool kNesterov, bool kDecay, bool kUnscale, std::size_t kCount = kBlock>
inline void master_block(const Consts& k, const Prep& p, float* w, float* m, float* v, const std::uint16_t* g,
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
  for (std::size_t b = 0; b < kCount; ++b) master_update<kNesterov, kDecay, kUnscale>(k, p, gs[b], ws[b], ms[b], vs[b]);
  for (std::size_t b = 0; b < kCount; ++b) Vec::store(w + b * width, ws[b]);
  for (std::size_t b = 0; b < kCount; ++b) Vec::store(m + b * width, ms[b]);
  for (std::size_t b = 0; b < kCount; ++b) Vec::store(v + b * width, vs[b]);
  for (std::size_t b = 0; b < kCount; ++b) Narrow<kHalf>::store(out + b * width, ws[b]);
}

template <Half kHalf, bool kNesterov, bool kDecay, bool kUnscale>
void run_master(float* w, float* m, float* v, const std::uint16_t* g, const std::uint16_t* param, std::uint16_t* out,
                std::size_t n, const Consts& k, const Prep& p) {
  constexpr std::size_t width = Vec::kWidth;
  const bool far = p.far;
  std::size_t i = 0;
  for (; i + kBlock * width <= n; i += kBlock * width) {
    if (far) {
      for (std::size_t line = 0; line < kBlock * width; line += 16) {  // one prefetch per 64-byte line
        Vec::prefetch(reinterpret_cast<const float*>(g + i + kPrefetchAhead + line));
        Vec::prefetch(w + i + kPrefetchAhead + line);
        Vec::prefetch(m + i + kPrefetchAhead + line);
        Vec::prefetch(v + i + kPrefetchAhead + line);
      }
    }
    master_block<kHalf, kNesterov, kDecay, kUnscale>(k, p, w + i, m + i, v + i, g + i, param ? param + i : param,
                                                     out + i);
  }
  for (; i + width <= n; i += width) {  // fewer than kBlock whole registers left
    master_block<kHalf, kNesterov, kDecay, kUnscale, 1>(k, p, w + i, m + i, v + i, g + i, param ? param + i : param,
                                                        out + i);
  }
  if (i < n) {  // fewer than a register: the same instructions on the lanes that exist
    const std::size_t rest = n - i;
    const auto lanes = Vec::first(rest);
    std::uint16_t g16[width] = {};
    std::uint16_t out16[width];
    std::memcpy(g16, g + i, rest * sizeof(std::uint16_t));
    Reg wv = Vec::load(w + i, lanes);
    if (param != nullptr) {  // lanes past the end: 0 against 0, kept
      std::uint16_t param16[width] = {};
      std::memcpy(param16, param + i, rest * sizeof(std::uint16_t));
      wv = Narrow<kHalf>::follow(wv, param16);
    }
    Reg mv = Vec::load(m + i, lanes);
    Reg vv = Vec::load(v + i, lanes);
    master_update<kNesterov, kDecay, kUnscale>(k, p, Narrow<kHalf>::load(g16), wv, mv, vv);
    Vec::store(w + i, wv, lanes);
    Vec::store(m + i, mv, lanes);
    Vec::store(v + i, vv, lanes);
    Narrow<kHalf>::store(out16, wv);
    std::memcpy(out + i, out16, rest * sizeof(std::uint16_t));
  }
}

template <Half kHalf, bool kNesterov>
void run_master_prep(float* w, float* m, float* v, const std::uint16_t* g, const std::uint16_t* param,
                     std::uint16_t* out, std::size_t n, const Consts& k, const Prep& p, const GradPrep& gp) {
  if (gp.decay) {
    gp.unscale ? run_master<kHalf, kNesterov, true, true>(w, m, v, g, param, out, n, k, p)
               : run_master<kHalf, kNesterov, true, false>(w, m, v, g, param, out, n, k, p);
  } else {
    gp.unscale ? run_master<kHalf, kNesterov, false, true>(w, m, v, g, param, out, n, k, p)
               : run_master<kHalf, kNesterov, false, false>(w, m, v, g, param, out, n, k, p);
  }
}

template <Half kHalf>
void run_master_half(float* w, float* m, float* v, const std::uint16_t* g, const std::uint16_t* param,
                     std::uint16_t* out, std::size_t n, const Consts& k, const Prep& p, const GradPrep& gp,
                     bool nesterov) {
  nesterov ? run_master_prep<kHalf, true>(w, m, v, g, param, out, n, k, p, gp)
           : run_master_prep<kHalf, false>(w, m, v, g, param, out, n, k, p, gp);
}

}  // namespace

// This level's MasterChunk (adam_master.h).
void master_chunk(float* master, float* m, float* v, const std::uint16_t* grad, const std::uint16_t* param,
                  std::uint16_t* out, std::size_t n, const AdamCoeffs& c, const GradPrep& gp, bool nesterov,
                  Half half) {
  const Consts k{Vec::set1(c.beta1),           Vec::set1(c.beta2),  Vec::set1(c.one_minus_beta1),
                 Vec::set1(c.one_minus_beta2), Vec::set1(c.neg_lr), Vec::set1(c.eps)};
  const Prep p{Vec::set1(gp.weight_decay), Vec::set1(gp.grad_scale), n >= c.prefetch_min};
  if (half == Half::kFloat16) {
    run_master_half<Half::kFloat16>(master, m, v, grad, param, out, n, k, p, gp, nesterov);
  } else {
    run_master_half<Half::kBFloat16>(master, m, v, grad, param, out, n, k, p, gp, nesterov);
  }
}

}  // namespace MSO_LEVEL
}  // namespace mso
