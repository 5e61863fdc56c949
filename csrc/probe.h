#pragma once

#include <cstddef>

namespace mso {

// Reads g, m, v and writes m, v, d (24 bytes an element) with no real arithmetic: the speed limit
// the kernel is measured against. stream: write d with non-temporal stores.
void bandwidth_probe(float* m, float* v, const float* g, float* d, std::size_t n, bool stream);

}  // namespace mso
