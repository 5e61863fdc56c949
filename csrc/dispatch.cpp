// The table's rows and the active level. The CPU checks live with the rows, in each level's file.
#include "dispatch.h"

#include <atomic>
#include <cstdlib>

namespace mso {
namespace {

// Filled at load (static initialisation of the level files), best first; read-only from then on. A
// plain array: rows never move once a level is chosen, and nothing is freed at exit.
constexpr std::size_t kMaxLevels = 8;  // more than any CPU family has

struct Table {
  Level rows[kMaxLevels];
  std::size_t count = 0;
};

Table& table() {
  static Table t;
  return t;
}

// The best level this CPU runs; MINDSPORE_OFFLOAD_ISA is read in Python (mindspore_offload/_env.py, the one
// place every variable is read), which forces a level through set_active_level.
std::atomic<const Level*>& active() {
  static std::atomic<const Level*> level{available_levels().front()};
  return level;
}

}  // namespace

void register_level(const Level& level) {
  Table& t = table();
  if (t.count == kMaxLevels) std::abort();  // a build with more levels than kMaxLevels: raise it
  std::size_t at = t.count++;
  for (; at > 0 && t.rows[at - 1].priority < level.priority; --at) t.rows[at] = t.rows[at - 1];
  t.rows[at] = level;
}

const Level* find_level(const std::string& name) {
  const Table& t = table();
  for (std::size_t i = 0; i < t.count; ++i) {
    if (name == t.rows[i].name) return &t.rows[i];
  }
  return nullptr;
}

std::vector<const Level*> registered_levels() {
  const Table& t = table();
  std::vector<const Level*> out;
  for (std::size_t i = 0; i < t.count; ++i) out.push_back(&t.rows[i]);
  return out;
}

std::vector<const Level*> available_levels() {
  std::vector<const Level*> out;
  for (const Level* level : registered_levels()) {
    if (level->supported()) out.push_back(level);
  }
  return out;
}

const Level& active_level() { return *active().load(std::memory_order_relaxed); }

void set_active_level(const Level& level) { active().store(&level); }

}  // namespace mso
