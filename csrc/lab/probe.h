// The memory-bandwidth limit the kernel is measured against (benchmarks only; not in the shipped _C).
#pragma once

#include <cstddef>
#include <cstdint>

#include "dispatch.h"

namespace mso {
namespace lab {

// Which of the kernel's access patterns the probe moves, with almost no arithmetic:
//   kDelta: read g, m, v; write m, v, d (24 bytes an element), d plainly or with streaming stores
//   kApply: read p, g, m, v; write p, m, v (28 bytes an element), all plain stores, as the kernel does
enum class Pattern { kDelta, kApply };

// out is d for kDelta and p for kApply, at `level`'s vector width (the caller checked the CPU runs it);
// stream is only meaningful for kDelta. Split over threads by the kernel's driver (pass.h), at its grain.
void bandwidth_probe(Pattern pattern, const Level& level, bool stream, float* m, float* v, const float* g, float* out,
                     std::size_t n);

// The master pass's pattern (28 bytes an element in five streams, two of them 16-bit): reads g, p, m, v
// and writes p, m, v, out.
void bandwidth_probe_master(const Level& level, float* m, float* v, const std::uint16_t* g, float* p,
                            std::uint16_t* out, std::size_t n);

}  // namespace lab
}  // namespace mso
