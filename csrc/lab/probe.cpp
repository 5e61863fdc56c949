// The bandwidth probe at every level, with the kernel's store variants: each level's file compiles the
// loops of probe_body.h with its own vector wrapper (lab build only), so an AVX2-only CPU gets a
// streaming-store limit as fair as an AVX-512 one. The whole range goes to the level's loops: there are
// no MindSpore leftovers to round.
#include "lab/probe.h"

#include "pass.h"

namespace mso::lab {

void bandwidth_probe(Pattern pattern, const Level& level, bool stream, float* m, float* v, const float* g, float* out,
                     std::size_t n) {
  const auto probe = level.kernels.probe;
  const bool apply = pattern == Pattern::kApply;
  run_pass(
      n, n, nullptr, false,
      [&](std::size_t at, std::size_t len) { probe(apply, stream, m + at, v + at, g + at, out + at, len); },
      [](std::size_t, std::size_t) {});
}

void bandwidth_probe_master(const Level& level, float* m, float* v, const std::uint16_t* g, float* p,
                            std::uint16_t* out, std::size_t n) {
  const auto probe = level.kernels.probe_master;
  run_pass(
      n, n, nullptr, false, [&](std::size_t at, std::size_t len) { probe(m + at, v + at, g + at, p + at, out + at, len); },
      [](std::size_t, std::size_t) {});
}

}  // namespace mso::lab
