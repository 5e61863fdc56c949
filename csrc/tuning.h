// Size thresholds of the host step, derived from this CPU's caches at first use (tuning.cpp says the
// rule and what it was measured on), each with an environment override.
#pragma once

#include <cstddef>

namespace mso {

struct Tuning {
  std::size_t grain;         // sets when a pass is split over threads, and the shortest chunk (threadpool.h)
  std::size_t stream_min;    // from this many elements on, the delta is written with streaming stores
  std::size_t prefetch_min;  // a thread's chunk at least this long prefetches its streams ahead
};

Tuning tuning();
// The lab build binds it whole; _C only to carry the environment's overrides (override_thresholds).
void set_tuning(const Tuning& t);

}  // namespace mso
