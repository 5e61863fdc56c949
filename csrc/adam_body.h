// The Adam loop body, written once for every instruction-set level.
//
// Deliberately no include guard: each level's file (adam_avx512.cpp, adam_avx2.cpp, adam_scalar.cpp)
// includes it once, through level_body.h, after raising its target and defining its vector wrapper
// `Vec` in namespace mso::MSO_LEVEL, so everything below is compiled for that level and lives in that
// namespace. The including file includes every header first: nothing is included from inside a target
// region, where a shared inline function would be compiled for one level and could be picked for another.
//
// Vec provides, for `kWidth` floats at a time: reg, mask, set1, load/store (unaligned), masked
// load (zero-filled) and store, first(count) (the mask of lanes [0, count)), stream + fence, add, mul,
// div, sqrt, fma(a, b, c) = a * b + c rounded once, and prefetch (the lab's probe adds sub). A level without a vector unit is
// the same body with kWidth = 1, so every level computes the same formula in the same order.
#ifndef MSO_LEVEL
#error "define MSO_LEVEL (the level's namespace) and its Vec before including adam_body.h"
#endif

namespace mso {
namespace MSO_LEVEL {
namespace {

using Reg = Vec::reg;

struct Consts {
  Reg beta1, beta2, c1, c2, neg_lr, eps;
};

// One Adam update of m and v, and the delta, rounded exactly as MindSpore's AdamNoUpdateParam rounds
// its vector body: m and v each by one fused multiply-add, lr_t * m before the division.
template <bool kNesterov>
inline Reg update(const Consts& k, Reg g, Reg& m, Reg& v) {
  m = Vec::fma(m, k.beta1, Vec::mul(k.c1, g));
  v = Vec::fma(v, k.beta2, Vec::mul(Vec::mul(k.c2, g), g));
  const Reg num = kNesterov ? Vec::fma(m, k.beta1, Vec::mul(k.c1, g)) : m;
  return Vec::div(Vec::mul(k.neg_lr, num), Vec::add(Vec::sqrt(v), k.eps));
}

// The alignment head and the tail: the same update on the lanes of `lanes` only, so there is no scalar
// remainder with its own rounding.
template <bool kNesterov, Output kOut>
inline void partial(const Consts& k, float* m, float* v, const float* g, float* out, Vec::mask lanes) {
  Reg mv = Vec::load(m, lanes);
  Reg vv = Vec::load(v, lanes);
  Reg dv = update<kNesterov>(k, Vec::load(g, lanes), mv, vv);
  if (kOut == Output::kApply) dv = Vec::add(Vec::load(out, lanes), dv);
  Vec::store(m, mv, lanes);
  Vec::store(v, vv, lanes);
  Vec::store(out, dv, lanes);
}

// Vectors handled together: as many as keep every stream's registers and the six constants in the
// register file (32 on AVX-512: 4 x 4 + 6; 16 on AVX2: 2 x 4 + 6).
constexpr std::size_t kBlock = Vec::kWidth >= 16 ? 4 : Vec::kWidth >= 8 ? 2 : 1;

template <Output kOut>
inline void prefetch_block(const float* m, const float* v, const float* g, const float* out) {
  for (std::size_t line = 0; line < kBlock * Vec::kWidth; line += 16) {  // one prefetch per 64-byte line
    Vec::prefetch(g + kPrefetchAhead + line);
    Vec::prefetch(m + kPrefetchAhead + line);
    Vec::prefetch(v + kPrefetchAhead + line);
    if (kOut == Output::kApply) Vec::prefetch(out + kPrefetchAhead + line);
  }
}

// kCount whole registers of every stream: all loads first, then the arithmetic, then the stores
// stream by stream, so the loads of a block are in flight together while the divide/sqrt unit
// works. Each element still goes through update() alone: the order only changes when memory is touched.
template <bool kNesterov, Output kOut, std::size_t kCount = kBlock>
inline void block(const Consts& k, float* m, float* v, const float* g, float* out) {
  constexpr std::size_t w = Vec::kWidth;
  Reg gs[kCount], ms[kCount], vs[kCount], os[kCount];
  for (std::size_t b = 0; b < kCount; ++b) gs[b] = Vec::load(g + b * w);
  for (std::size_t b = 0; b < kCount; ++b) ms[b] = Vec::load(m + b * w);
  for (std::size_t b = 0; b < kCount; ++b) vs[b] = Vec::load(v + b * w);
  if (kOut == Output::kApply) {
    for (std::size_t b = 0; b < kCount; ++b) os[b] = Vec::load(out + b * w);
  }
  for (std::size_t b = 0; b < kCount; ++b) {
    const Reg dv = update<kNesterov>(k, gs[b], ms[b], vs[b]);
    os[b] = kOut == Output::kApply ? Vec::add(os[b], dv) : dv;
  }
  for (std::size_t b = 0; b < kCount; ++b) Vec::store(m + b * w, ms[b]);
  for (std::size_t b = 0; b < kCount; ++b) Vec::store(v + b * w, vs[b]);
  for (std::size_t b = 0; b < kCount; ++b) {
    if (kOut == Output::kStream) {
      Vec::stream(out + b * w, os[b]);
    } else {
      Vec::store(out + b * w, os[b]);
    }
  }
}

template <bool kNesterov, Output kOut>
void run(float* m, float* v, const float* g, float* out, std::size_t n, const Consts& k, bool far) {
  constexpr std::size_t w = Vec::kWidth;
  std::size_t i = 0;
  if (kOut == Output::kStream) {  // streaming stores want `out` on a whole-register boundary
    constexpr std::uintptr_t align = sizeof(Reg);
    const std::size_t head = ((align - (reinterpret_cast<std::uintptr_t>(out) & (align - 1))) & (align - 1)) / 4;
    if (head != 0 && head <= n) {
      partial<kNesterov, kOut>(k, m, v, g, out, Vec::first(head));
      i = head;
    }
  }
  for (; i + kBlock * w <= n; i += kBlock * w) {
    if (far) prefetch_block<kOut>(m + i, v + i, g + i, out + i);
    block<kNesterov, kOut>(k, m + i, v + i, g + i, out + i);
  }
  for (; i + w <= n; i += w) {  // fewer than kBlock whole registers left
    block<kNesterov, kOut, 1>(k, m + i, v + i, g + i, out + i);
  }
  if (i < n) partial<kNesterov, kOut>(k, m + i, v + i, g + i, out + i, Vec::first(n - i));
  if (kOut == Output::kStream) Vec::fence();
}

template <bool kNesterov>
void run_output(float* m, float* v, const float* g, float* out, std::size_t n, const Consts& k, Output output,
                bool far) {
  switch (output) {
    case Output::kStream: return run<kNesterov, Output::kStream>(m, v, g, out, n, k, far);
    case Output::kApply: return run<kNesterov, Output::kApply>(m, v, g, out, n, k, far);
    default: return run<kNesterov, Output::kStore>(m, v, g, out, n, k, far);
  }
}

}  // namespace

// This level's AdamChunk (adam.h).
void adam_chunk(float* m, float* v, const float* grad, float* out, std::size_t n, const AdamCoeffs& c,
                bool nesterov, Output output) {
  const Consts k{Vec::set1(c.beta1),           Vec::set1(c.beta2),  Vec::set1(c.one_minus_beta1),
                 Vec::set1(c.one_minus_beta2), Vec::set1(c.neg_lr), Vec::set1(c.eps)};
  const bool far = n >= c.prefetch_min;
  if (nesterov) {
    run_output<true>(m, v, grad, out, n, k, output, far);
  } else {
    run_output<false>(m, v, grad, out, n, k, output, far);
  }
}

}  // namespace MSO_LEVEL
}  // namespace mso
