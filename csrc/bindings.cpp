// The Python face of the kernel (mindspore_offload._C). It checks buffers and translates errors;
// hyper-parameters are checked in mindspore_offload/kernel.py before they get here.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "adam.h"
#include "adam_master.h"
#include "adamw.h"
#include "dispatch.h"
#include "threadpool.h"
#include "tuning.h"
#ifdef MSO_LAB
#include "lab/lab.h"
#endif

namespace py = pybind11;

namespace {

struct Buffer {
  const char* name;
  py::array array;
  bool writes;
  bool sixteen = false;  // a float16/bfloat16 buffer, passed from kernel.py as a uint16 view
};

// Every check, for every buffer, before anything is written.
void check_buffers(const char* fn, const std::vector<Buffer>& buffers) {
  const auto where = [fn](const char* name) { return std::string("For '") + fn + "', the '" + name + "'"; };
  const auto& first = buffers.front();
  for (const Buffer& b : buffers) {
    if (b.sixteen && !b.array.dtype().is(py::dtype::of<std::uint16_t>())) {
      throw py::type_error(where(b.name) + " must be a 16-bit array (float16 or bfloat16 bits), but got dtype " +
                           std::string(py::str(b.array.dtype())) + ".");
    }
    if (!b.sixteen && !b.array.dtype().is(py::dtype::of<float>())) {
      throw py::type_error(where(b.name) + " must be a float32 array, but got dtype " +
                           std::string(py::str(b.array.dtype())) + ". Convert it with .astype(numpy.float32).");
    }
    if (b.array.size() != first.array.size()) {
      throw py::value_error(where(b.name) + " must have as many elements as '" + first.name + "' (" +
                            std::to_string(first.array.size()) + "), but has " + std::to_string(b.array.size()) +
                            ".");
    }
    if (!(b.array.flags() & py::array::c_style)) {
      throw py::value_error(where(b.name) + " must be C-contiguous, but is a strided view; pass a contiguous "
                            "array (numpy.ascontiguousarray) and keep that array as the state.");
    }
    if (!(b.array.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_)) {
      throw py::value_error(where(b.name) + " is not aligned to its element size (a view into a byte buffer at an "
                            "odd offset); pass an aligned array, e.g. a copy.");
    }
    if (b.writes && !b.array.writeable()) {
      throw py::value_error(where(b.name) + " is read-only, but it is written in place; pass a writeable array.");
    }
  }
  for (std::size_t i = 0; i < buffers.size(); ++i) {
    for (std::size_t j = i + 1; j < buffers.size(); ++j) {
      const auto& a = buffers[i].array;
      const auto& b = buffers[j].array;
      if (a.nbytes() == 0 || b.nbytes() == 0) continue;
      const auto a0 = reinterpret_cast<std::uintptr_t>(a.data());
      const auto b0 = reinterpret_cast<std::uintptr_t>(b.data());
      if (a0 < b0 + static_cast<std::uintptr_t>(b.nbytes()) && b0 < a0 + static_cast<std::uintptr_t>(a.nbytes())) {
        throw py::value_error(where(buffers[i].name) + " and '" + buffers[j].name +
                              "' share memory; each must be a separate array.");
      }
    }
  }
}

// A float32 pass's pointers, taken once check_buffers has passed.
struct FloatPass {
  float* m;
  float* v;
  const float* grad;
  float* out;
  std::size_t n;
};

FloatPass checked_float_pass(const char* fn, const std::vector<Buffer>& buffers, py::array& m, py::array& v,
                             py::array& grad, py::array& out) {
  check_buffers(fn, buffers);
  return {static_cast<float*>(m.mutable_data()), static_cast<float*>(v.mutable_data()),
          static_cast<const float*>(grad.data()), static_cast<float*>(out.mutable_data()),
          static_cast<std::size_t>(m.size())};
}

// A 16-bit pass's pointers (Adam's and AdamW's alike), after every check of its buffers and of `half`.
// `param` (None: not read) is the 16-bit parameter as it is now; it may be `out` itself, but no other buffer.
struct MasterPass {
  float* master;
  float* m;
  float* v;
  const std::uint16_t* grad;
  const std::uint16_t* param;
  std::uint16_t* out;
  std::size_t n;
  mso::Half kind;
};

MasterPass checked_master_pass(const char* fn, py::array& master, py::array& m, py::array& v, py::array& grad,
                               py::array& out, const std::optional<py::array>& param, const std::string& half) {
  std::vector<Buffer> buffers{{"master", master, true}, {"m", m, true}, {"v", v, true}, {"grad", grad, false, true},
                              {"out", out, true, true}};
  const bool param_is_out = param && param->data() == out.data() && param->nbytes() == out.nbytes();
  if (param && !param_is_out) buffers.push_back({"param", *param, false, true});
  check_buffers(fn, buffers);
  if (half != "float16" && half != "bfloat16") {
    throw py::value_error(std::string("For '") + fn + "', the 'half' must be 'float16' or 'bfloat16', but got '" +
                          half + "'.");
  }
  return {static_cast<float*>(master.mutable_data()),
          static_cast<float*>(m.mutable_data()),
          static_cast<float*>(v.mutable_data()),
          static_cast<const std::uint16_t*>(grad.data()),
          param ? static_cast<const std::uint16_t*>(param->data()) : nullptr,
          static_cast<std::uint16_t*>(out.mutable_data()),
          static_cast<std::size_t>(m.size()),
          half == "float16" ? mso::Half::kFloat16 : mso::Half::kBFloat16};
}

void check_beta1_power(const char* fn, float beta1_power) {
  if (beta1_power == 1.0f) {
    throw py::value_error(std::string("For '") + fn + "', the 'beta1_power' must not be 1 (no step taken yet); " +
                          "pass beta1**t for step t >= 1.");
  }
}

// Checks everything, then runs one step with the GIL released. `out` receives the delta, or with
// apply=true is the parameter the delta is added to.
void checked_step(const char* fn, const std::vector<Buffer>& buffers, py::array& m, py::array& v, py::array& grad,
                  py::array& out, const mso::AdamHyper& h, bool use_locking, bool apply) {
  const FloatPass p = checked_float_pass(fn, buffers, m, v, grad, out);
  check_beta1_power(fn, h.beta1_power);
  py::gil_scoped_release release;
  mso::adam_run(p.m, p.v, p.grad, p.out, p.n, h, use_locking, apply);
}

void adam_delta(py::array m, py::array v, py::array grad, py::array out, float lr, float beta1, float beta2,
                float eps, float beta1_power, float beta2_power, bool nesterov, bool use_locking) {
  checked_step("adam_delta", {{"m", m, true}, {"v", v, true}, {"grad", grad, false}, {"out", out, true}}, m, v, grad,
               out, {lr, beta1, beta2, eps, beta1_power, beta2_power, nesterov}, use_locking, false);
}

void adam_apply(py::array param, py::array m, py::array v, py::array grad, float lr, float beta1, float beta2,
                float eps, float beta1_power, float beta2_power, bool nesterov, bool use_locking) {
  checked_step("adam_apply", {{"param", param, true}, {"m", m, true}, {"v", v, true}, {"grad", grad, false}}, m, v,
               grad, param, {lr, beta1, beta2, eps, beta1_power, beta2_power, nesterov}, use_locking, true);
}

void adam_master_step(py::array master, py::array m, py::array v, py::array grad, py::array out,
                      std::optional<py::array> param, float lr, float beta1, float beta2, float eps,
                      float beta1_power, float beta2_power, bool nesterov, const std::string& half,
                      float weight_decay, bool decay, float grad_scale, bool unscale, bool use_locking) {
  const char* fn = "adam_master_step";
  const MasterPass p = checked_master_pass(fn, master, m, v, grad, out, param, half);
  check_beta1_power(fn, beta1_power);
  const mso::AdamHyper h{lr, beta1, beta2, eps, beta1_power, beta2_power, nesterov};
  const mso::GradPrep prep{weight_decay, grad_scale, decay, unscale};
  py::gil_scoped_release release;
  mso::adam_master_run(p.master, p.m, p.v, p.grad, p.param, p.out, p.n, h, prep, p.kind, use_locking);
}

// AdamW: `out` is the parameter itself (in place) or a separate array for the new parameter.
// `float32`: AdamWRounding::kFloat32 (adamw.h), else kDouble.
void adamw_step(py::array param, py::array m, py::array v, py::array grad, py::array out, float lr, float beta1,
                float beta2, float eps, float weight_decay, bool use_locking, bool float32) {
  const bool in_place = param.data() == out.data() && param.nbytes() == out.nbytes();
  std::vector<Buffer> buffers{{"param", param, in_place}, {"m", m, true}, {"v", v, true}, {"grad", grad, false}};
  if (!in_place) buffers.push_back({"out", out, true});
  const FloatPass p = checked_float_pass("adamw_step", buffers, m, v, grad, out);
  auto* wp = static_cast<const float*>(param.data());
  py::gil_scoped_release release;
  mso::adamw_run(wp, p.m, p.v, p.grad, p.out, p.n,
                 {lr, beta1, beta2, eps, weight_decay, mso::adamw_rounding(float32)},
                 use_locking);
}

void adamw_master_step(py::array master, py::array m, py::array v, py::array grad, py::array out,
                       std::optional<py::array> param, float lr, float beta1, float beta2, float eps,
                       float weight_decay, const std::string& half, bool use_locking, bool float32) {
  const MasterPass p = checked_master_pass("adamw_master_step", master, m, v, grad, out, param, half);
  py::gil_scoped_release release;
  mso::adamw_master_run(p.master, p.m, p.v, p.grad, p.param, p.out, p.n,
                        {lr, beta1, beta2, eps, weight_decay, mso::adamw_rounding(float32)}, p.kind, use_locking);
}

std::vector<std::string> available_isas() {
  std::vector<std::string> names;
  for (const mso::Level* level : mso::available_levels()) names.emplace_back(level->name);
  return names;
}

void set_isa(const std::string& name) {
  const mso::Level* level = mso::find_level(name);
  if (level == nullptr) {
    std::string known;
    for (const mso::Level* row : mso::registered_levels()) known += std::string(known.empty() ? "'" : ", '") + row->name + "'";
    throw py::value_error("The 'isa' must be one of " + known + ", but got '" + name + "'.");
  }
  if (!level->supported()) {
    throw py::value_error("The 'isa' '" + name + "' is not supported by this CPU; choose one of available_isas().");
  }
  mso::set_active_level(*level);
}

}  // namespace

// MSO_LAB builds the same module as mindspore_offload._bench, with the lab's extras (setup.py).
#ifdef MSO_LAB
PYBIND11_MODULE(_bench, mod) {
  mod.doc() = "mindspore-offload's kernel build with lab equipment (benchmarks and tests only).";
#else
PYBIND11_MODULE(_C, mod) {
  mod.doc() = "mindspore-offload's host Adam kernel (private; use mindspore_offload.kernel).";
#endif
  mod.def("adam_delta", &adam_delta, py::arg("m"), py::arg("v"), py::arg("grad"), py::arg("out"), py::arg("lr"),
          py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("beta1_power"), py::arg("beta2_power"),
          py::arg("nesterov"), py::arg("use_locking") = false);
  mod.def("adam_apply", &adam_apply, py::arg("param"), py::arg("m"), py::arg("v"), py::arg("grad"), py::arg("lr"),
          py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("beta1_power"), py::arg("beta2_power"),
          py::arg("nesterov"), py::arg("use_locking") = false);
  mod.def("adam_master_step", &adam_master_step, py::arg("master"), py::arg("m"), py::arg("v"), py::arg("grad"),
          py::arg("out"), py::arg("param"), py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("beta1_power"),
          py::arg("beta2_power"), py::arg("nesterov"), py::arg("half"), py::arg("weight_decay"), py::arg("decay"),
          py::arg("grad_scale"), py::arg("unscale"), py::arg("use_locking") = false);
  mod.def("adamw_step", &adamw_step, py::arg("param"), py::arg("m"), py::arg("v"), py::arg("grad"), py::arg("out"),
          py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"),
          py::arg("use_locking") = false, py::arg("float32") = false);
  mod.def("adamw_master_step", &adamw_master_step, py::arg("master"), py::arg("m"), py::arg("v"), py::arg("grad"),
          py::arg("out"), py::arg("param"), py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"),
          py::arg("weight_decay"), py::arg("half"), py::arg("use_locking") = false, py::arg("float32") = false);
  mod.def("available_isas", &available_isas);
  mod.def("active_isa", [] { return std::string(mso::active_level().name); });
  mod.def("set_isa", &set_isa, py::arg("name"));
  // The size thresholds in force (derived from this CPU's caches, or the environment's overrides), and
  // the pool's spin bound in microseconds (threadpool.h).
  mod.def("thresholds", [] {
    const mso::Tuning t = mso::tuning();
    return py::dict(py::arg("grain") = t.grain, py::arg("stream_min") = t.stream_min,
                    py::arg("prefetch_min") = t.prefetch_min, py::arg("spin_us") = mso::get_spin_microseconds());
  });
  // The environment's overrides, read and checked in mindspore_offload/_env.py; None keeps the derived
  // value. Private: kernel.py calls it once, at import.
  mod.def("override_thresholds", [](std::optional<std::size_t> stream_min, std::optional<std::size_t> prefetch_min,
                                    std::optional<std::uint32_t> spin_us) {
    mso::Tuning t = mso::tuning();
    if (stream_min) t.stream_min = *stream_min;
    if (prefetch_min) t.prefetch_min = *prefetch_min;
    mso::set_tuning(t);
    if (spin_us) mso::set_spin_microseconds(*spin_us);
  }, py::arg("stream_min"), py::arg("prefetch_min"), py::arg("spin_us") = std::nullopt);
  mod.def("get_num_threads", &mso::get_num_threads);
  mod.def("set_num_threads", &mso::set_num_threads, py::arg("n"));
#ifdef MSO_LAB
  mso::lab::define(mod);
#endif
}
