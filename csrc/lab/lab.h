// Lab equipment for benchmarks and tests: bound only into mindspore_offload._bench, never into _C.
#pragma once

#include <pybind11/pybind11.h>

namespace mso::lab {

// Adds bandwidth_probe, get_tuning and set_tuning to the lab module.
void define(pybind11::module_& mod);

}  // namespace mso::lab
