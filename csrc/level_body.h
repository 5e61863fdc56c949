// Everything one instruction-set level compiles, and its row of the dispatch table (dispatch.h).
//
// No include guard: each level's file includes it once, inside its target region, after defining its
// vector wrapper `Vec` (adam_body.h lists what it provides) in namespace mso::MSO_LEVEL and including
// dispatch.h. kKernels is constant data, so nothing here runs at load: the level's file registers it
// outside its target region with MSO_REGISTER_LEVEL. A new update rule adds its body and its column here.
#include "adam_body.h"
#include "adam_master_body.h"
#include "adamw_body.h"
#ifdef MSO_LAB
#include "lab/probe_body.h"
#endif

namespace mso {
namespace MSO_LEVEL {

#ifdef MSO_LAB
constexpr Kernels kKernels{&adam_chunk, &master_chunk, &adamw_chunk, &adamw_master_chunk, &lab::probe, &lab::probe_master};
#else
constexpr Kernels kKernels{&adam_chunk, &master_chunk, &adamw_chunk, &adamw_master_chunk, nullptr, nullptr};
#endif

}  // namespace MSO_LEVEL
}  // namespace mso
