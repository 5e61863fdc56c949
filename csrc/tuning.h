// Size thresholds of the host step, measured in benchmarks/ and settable there.
#pragma once

#include <cstddef>

namespace mso {

struct Tuning {
  std::size_t grain;       // fewest elements worth handing to one more thread
  std::size_t stream_min;  // from this many elements on, delta is written with streaming stores
};

Tuning tuning();
void set_tuning(const Tuning& t);

}  // namespace mso
