#include "tuning.h"

#include <atomic>

namespace mso {
namespace {

std::atomic<std::size_t> g_grain{std::size_t{1} << 17};
std::atomic<std::size_t> g_stream_min{std::size_t{1} << 20};

}  // namespace

Tuning tuning() { return Tuning{g_grain.load(std::memory_order_relaxed), g_stream_min.load(std::memory_order_relaxed)}; }

void set_tuning(const Tuning& t) {
  g_grain.store(t.grain);
  g_stream_min.store(t.stream_min);
}

}  // namespace mso
