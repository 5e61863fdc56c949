// The dispatch table: one row per instruction-set level compiled into this build, each registered by
// its own file (adam_avx512.cpp, adam_avx2.cpp, adam_scalar.cpp) with its name, its priority, its CPU
// check and its kernels. The best level this CPU runs is chosen at first use; Python may force another
// (set_isa, MINDSPORE_OFFLOAD_ISA). Nothing here knows a CPU family: a level whose file is not in the
// build is simply not in the table.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "adam.h"
#include "adam_master.h"
#include "adamw.h"

namespace mso {

// A level's kernels, one column each; a new update rule adds its column here and in level_body.h.
struct Kernels {
  AdamChunk adam;
  MasterChunk master;
  AdamWChunk adamw;
  AdamWMasterChunk adamw_master;
  // The lab build's bandwidth probes (lab/probe_body.h); null in the shipped module.
  void (*probe)(bool apply, bool stream, float* m, float* v, const float* g, float* out, std::size_t n);
  void (*probe_master)(float* m, float* v, const std::uint16_t* g, float* p, std::uint16_t* out, std::size_t n);
};

struct Level {
  const char* name;     // as MINDSPORE_OFFLOAD_ISA and set_isa spell it
  int priority;         // the higher, the better: available_levels() lists the best first
  bool (*supported)();  // whether this CPU runs the level, asked at run time
  Kernels kernels;
};

// Adds a row; called at load by MSO_REGISTER_LEVEL, before anything reads the table.
void register_level(const Level& level);

// A level's file registers its row once, after its target region: the registration runs at load on
// every CPU, so it must be compiled for the baseline. MSO_REGISTER_LEVEL(avx2, 1, cpu_has_avx2) adds
// {"avx2", 1, mso::avx2::cpu_has_avx2, mso::avx2::kKernels} (level_body.h defines kKernels).
#define MSO_REGISTER_LEVEL(level, priority, supported)                                        \
  namespace mso::level {                                                                      \
  namespace {                                                                                 \
  const bool registered = (register_level(Level{#level, priority, supported, kKernels}), true); \
  }                                                                                           \
  }

const Level* find_level(const std::string& name);  // null if this build has no such level
std::vector<const Level*> registered_levels();     // best first
std::vector<const Level*> available_levels();      // those this CPU runs, best first

const Level& active_level();
void set_active_level(const Level& level);  // the caller has checked level.supported()

}  // namespace mso
