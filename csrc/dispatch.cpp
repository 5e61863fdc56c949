#include "dispatch.h"

#include <atomic>

namespace mso {
namespace {

bool cpu_has_avx2() {
  __builtin_cpu_init();
  // F16C for the float16 master pass; every AVX2 CPU made has it.
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}

bool cpu_has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f");
}

// The best level this CPU runs; MINDSPORE_OFFLOAD_ISA is read in Python (mindspore_offload/_env.py, the one
// place every variable is read), which forces a level through set_active_isa.
struct State {
  std::atomic<int> active{static_cast<int>(available_isas().front())};
};

State& state() {
  static State s;
  return s;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    default: return "scalar";
  }
}

bool isa_from_name(const std::string& name, Isa* out) {
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2, Isa::kScalar}) {
    if (name == isa_name(isa)) {
      *out = isa;
      return true;
    }
  }
  return false;
}

bool isa_supported(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return cpu_has_avx512();
    case Isa::kAvx2: return cpu_has_avx2();
    default: return true;
  }
}

std::vector<Isa> available_isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2, Isa::kScalar}) {
    if (isa_supported(isa)) out.push_back(isa);
  }
  return out;
}

Isa active_isa() { return static_cast<Isa>(state().active.load(std::memory_order_relaxed)); }

void set_active_isa(Isa isa) { state().active.store(static_cast<int>(isa)); }

AdamKernel kernel_for(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return avx512::adam_step;
    case Isa::kAvx2: return avx2::adam_step;
    default: return scalar::adam_step;
  }
}

}  // namespace mso
