// The lab module's extras. mindspore_offload._bench is the same kernel build as _C (the same sources
// and flags; tests/kernel/test_kernel.py checks they give the same bits) plus these: the bandwidth probe and
// the size thresholds made settable, so benchmarks and tests can force a path at any size.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "dispatch.h"
#include "fp_env.h"
#include "lab/lab.h"
#include "lab/probe.h"
#include "tuning.h"

namespace py = pybind11;

namespace mso::lab {
namespace {

using Array = py::array_t<float, py::array::c_style>;

const Level& runnable_level(const std::string& name) {
  const Level* level = find_level(name);
  if (level == nullptr || !level->supported()) {
    throw py::value_error("The 'isa' must be one this CPU has (available_isas()), but got '" + name + "'.");
  }
  return *level;
}

void probe(const std::string& pattern, const std::string& isa_name, bool stream, Array m, Array v, Array g,
           Array out) {
  Pattern p;
  if (pattern == "delta") {
    p = Pattern::kDelta;
  } else if (pattern == "apply") {
    p = Pattern::kApply;
  } else {
    throw py::value_error("The 'pattern' must be 'delta' (24 bytes an element) or 'apply' (28), but got '" +
                          pattern + "'.");
  }
  const Level& level = runnable_level(isa_name);
  const auto n = m.size();
  if (v.size() != n || g.size() != n || out.size() != n) {
    throw py::value_error("m, v, grad and out must have the same number of elements.");
  }
  float* mp = m.mutable_data();
  float* vp = v.mutable_data();
  const float* gp = g.data();
  float* op = out.mutable_data();
  py::gil_scoped_release release;
  bandwidth_probe(p, level, stream, mp, vp, gp, op, static_cast<std::size_t>(n));
}

using Half16 = py::array_t<std::uint16_t, py::array::c_style>;

void probe_master(const std::string& isa_name, Array m, Array v, Half16 g, Array p, Half16 out) {
  const Level& level = runnable_level(isa_name);
  const auto n = m.size();
  if (v.size() != n || g.size() != n || p.size() != n || out.size() != n) {
    throw py::value_error("m, v, grad, param and out must have the same number of elements.");
  }
  float* mp = m.mutable_data();
  float* vp = v.mutable_data();
  const std::uint16_t* gp = g.data();
  float* pp = p.mutable_data();
  std::uint16_t* op = out.mutable_data();
  py::gil_scoped_release release;
  bandwidth_probe_master(level, mp, vp, gp, pp, op, static_cast<std::size_t>(n));
}

}  // namespace

void define(py::module_& mod) {
  mod.def("bandwidth_probe", &probe, py::arg("pattern"), py::arg("isa"), py::arg("stream"), py::arg("m"),
          py::arg("v"), py::arg("grad"), py::arg("out"),
          "The kernel's access pattern with almost no arithmetic: pattern 'delta' reads grad, m, v and "
          "writes m, v, out (stream: out with non-temporal stores); 'apply' reads out (the parameter), "
          "grad, m, v and writes out, m, v.");
  mod.def("bandwidth_probe_master", &probe_master, py::arg("isa"), py::arg("m"), py::arg("v"), py::arg("grad16"),
          py::arg("param"), py::arg("out16"),
          "The 16-bit-parameter pass's pattern with almost no arithmetic: reads grad16 (uint16), param, m, "
          "v and writes param, m, v and out16 (uint16); fill grad16 with float16 ones (0x3C00) so no lane "
          "is denormal.");
  mod.def("get_tuning", [] {
    const Tuning t = tuning();
    return py::dict(py::arg("grain") = t.grain, py::arg("stream_min") = t.stream_min,
                    py::arg("prefetch_min") = t.prefetch_min);
  });
  mod.def(
      "set_tuning",
      [](py::object grain, py::object stream_min, py::object prefetch_min) {
        Tuning t = tuning();  // None keeps a threshold as it is
        if (!grain.is_none()) t.grain = grain.cast<std::size_t>();
        if (!stream_min.is_none()) t.stream_min = stream_min.cast<std::size_t>();
        if (!prefetch_min.is_none()) t.prefetch_min = prefetch_min.cast<std::size_t>();
        set_tuning(t);
      },
      py::arg("grain") = py::none(), py::arg("stream_min") = py::none(), py::arg("prefetch_min") = py::none());
  // The calling thread's FP control (MXCSR or FPCR), so tests can call the kernel as a caller with
  // flush-to-zero would (MindSpore's import sets FPCR.FZ on aarch64) and check it is left as it was.
  mod.def("fp_control", [] { return fp_control() & kFpControlBits; });
  mod.def("set_fp_control", [](FpControl c) { set_fp_control((fp_control() & ~kFpControlBits) | (c & kFpControlBits)); },
          py::arg("control"));
  mod.attr("PASS_FP_CONTROL") = kPassFpControl;
  // This family's flush-to-zero bits: MXCSR's FTZ and DAZ, or FPCR's FZ.
#if defined(__x86_64__) || defined(__i386__)
  mod.attr("FLUSH_TO_ZERO") = FpControl{0x8040};
#else
  mod.attr("FLUSH_TO_ZERO") = FpControl{1} << 24;
#endif
}

}  // namespace mso::lab
