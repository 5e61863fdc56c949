// Choosing the instruction-set level once, from the CPU's features (Python may force another).
#pragma once

#include <string>
#include <vector>

#include "adam.h"

namespace mso {

enum class Isa { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

const char* isa_name(Isa isa);
bool isa_from_name(const std::string& name, Isa* out);
bool isa_supported(Isa isa);
std::vector<Isa> available_isas();  // best first

Isa active_isa();
void set_active_isa(Isa isa);  // the caller has checked isa_supported
AdamKernel kernel_for(Isa isa);

}  // namespace mso
