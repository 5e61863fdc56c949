// The floating-point environment every pass computes in, the same on every CPU family, so that no
// caller's setting changes the bits (a run resumes bit-identically on another host).
//
// Why fixed rather than the caller's: importing MindSpore on aarch64 turns on flush-to-zero (FPCR.FZ)
// in the importing thread, on x86 it leaves MXCSR alone; under the caller's environment a subnormal
// gradient or moment would give 0 on a Kunpeng host and its value on a Xeon. The pass environment is
// IEEE's default: round to nearest even, subnormals kept (x86: MXCSR 0x1F80, FTZ and DAZ off, every
// exception masked; aarch64: FPCR 0, FZ, FZ16, DN and AHP off, no trap enabled). The caller's is back
// when the pass returns (PassFpEnv); the thread pool's workers take the caller's, which during a pass
// is this one (threadpool.cpp).
#pragma once

#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

namespace mso {

using FpControl = std::uint64_t;

#if defined(__x86_64__) || defined(__i386__)
constexpr FpControl kPassFpControl = 0x1F80;
constexpr FpControl kFpControlBits = 0xFFC0;  // MXCSR's low 6 bits are status flags, not control
inline FpControl fp_control() { return _mm_getcsr(); }
inline void set_fp_control(FpControl c) { _mm_setcsr(static_cast<unsigned>(c)); }
#elif defined(__aarch64__)
constexpr FpControl kPassFpControl = 0;
constexpr FpControl kFpControlBits = ~FpControl{0};  // FPCR holds control only (status is FPSR)
inline FpControl fp_control() {
  FpControl c;
  __asm__ __volatile__("mrs %0, fpcr" : "=r"(c));
  return c;
}
inline void set_fp_control(FpControl c) { __asm__ __volatile__("msr fpcr, %0" : : "r"(c)); }
#else
#error "mindspore-offload builds for x86-64 and aarch64 only (see setup.py)"
#endif

// The pass environment on this thread for the object's lifetime, then the caller's exactly as it was.
// Writes the control register only when it differs (a write can stall the pipeline).
class PassFpEnv {
 public:
  PassFpEnv() : saved_(fp_control()), changed_((saved_ & kFpControlBits) != kPassFpControl) {
    if (changed_) set_fp_control((saved_ & ~kFpControlBits) | kPassFpControl);
  }
  ~PassFpEnv() {
    if (changed_) set_fp_control(saved_);
  }
  PassFpEnv(const PassFpEnv&) = delete;
  PassFpEnv& operator=(const PassFpEnv&) = delete;

 private:
  FpControl saved_;
  bool changed_;
};

}  // namespace mso
