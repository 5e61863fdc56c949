// Size thresholds of the host step, derived from this CPU's caches at first use (tuning.cpp says the
// rule and what it was measured on), each with an environment override.
#pragma once

#include <cstddef>
#include <string>

namespace mso {

struct Tuning {
  std::size_t grain;         // fewest elements worth handing to one more thread
  std::size_t stream_min;    // from this many elements on, the delta is written with streaming stores
  std::size_t prefetch_min;  // a thread's chunk at least this long prefetches its streams ahead
};

Tuning tuning();
void set_tuning(const Tuning& t);  // the lab build only (benchmarks, tests); _C does not bind it

// Empty when MINDSPORE_OFFLOAD_STREAM_MIN / _PREFETCH_MIN were unset or valid; otherwise why refused.
const std::string& tuning_env_error();

}  // namespace mso
