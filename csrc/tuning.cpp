// The thresholds from the machine, not constants measured on one CPU:
//   stream_min = L3 / 16 bytes: a delta pass keeps g, m, v and delta (16 bytes an element) in the L3
//     while it fits; past that the delta would be evicted before anyone reads it, and streaming stores
//     save its read-for-ownership. On an AMD EPYC (Zen 4, 32 MiB L3) that is 2 Mi elements.
//   prefetch_min = L2 / 4 bytes on Intel: a chunk whose every stream outgrows this core's L2
//     prefetches 4 KiB ahead. Measured to pay on an Intel Xeon (Emerald Rapids, 2 MiB L2) with the
//     one-register loop: 0.87-0.92 -> 0.94-1.0 of the bandwidth probe at 2^24-2^26. Measured to cost
//     on AMD EPYC Zen 4 with the block loop (6-40 % slower at 2^24-2^26, neutral at 2^20), whose
//     hardware prefetchers keep up on their own: off there, and on any CPU that is not Intel.
//   grain = 2^17: a pass stays on one thread below grain / 4 with up to two threads (measured on 2 Zen 3
//     vCPUs with the pool's spin), below grain / 2 with more (4-16 Intel cores); once split, chunks go
//     down to grain / 8 (threadpool.cpp). The cost of a wake-up, not a cache matter.
// Measured on AMD EPYC Zen 4 (2 vCPUs, 1 MiB L2, 32 MiB L3); docs/performance.md has the figures.
// MINDSPORE_OFFLOAD_STREAM_MIN and MINDSPORE_OFFLOAD_PREFETCH_MIN (elements) override the rule: read
// in mindspore_offload/_env.py and passed in at import (bindings.cpp's override_thresholds).
#include "tuning.h"

#include <atomic>

#include "cpu_caches.h"

namespace mso {
namespace {

struct State {
  std::atomic<std::size_t> grain{std::size_t{1} << 17};
  std::atomic<std::size_t> stream_min;
  std::atomic<std::size_t> prefetch_min;

  State() {
    const CacheSizes c = cpu_caches();
    stream_min = c.l3 != 0 ? c.l3 / 16 : std::size_t{1} << 20;
    const std::size_t never = ~std::size_t{0};
    const std::size_t by_l2 = c.l2 != 0 ? c.l2 / 4 : std::size_t{1} << 18;
    prefetch_min = cpu_is_intel() ? by_l2 : never;
  }
};

State& state() {
  static State s;
  return s;
}

}  // namespace

Tuning tuning() {
  State& s = state();
  return Tuning{s.grain.load(std::memory_order_relaxed), s.stream_min.load(std::memory_order_relaxed),
                s.prefetch_min.load(std::memory_order_relaxed)};
}

void set_tuning(const Tuning& t) {
  State& s = state();
  s.grain.store(t.grain);
  s.stream_min.store(t.stream_min);
  s.prefetch_min.store(t.prefetch_min);
}

}  // namespace mso
