// A persistent pool of worker threads: no thread is started per call on the hot path.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mso {

using TaskFn = void (*)(void* ctx, int index);
using RangeFn = void (*)(void* ctx, std::size_t begin, std::size_t len);

int get_num_threads();
void set_num_threads(int n);  // n >= 1; the calling thread counts as one

// After a job, a worker spins this long for the next one before it sleeps, and a caller spins this long
// for its helpers to finish before it sleeps: a training step's host ops follow each other within tens of
// microseconds (about 40 us a tensor for 600 small ones in GRAPH_MODE on a 2-vCPU AMD EPYC), and waking a
// sleeping thread (in a VM, a halted vCPU) cost 1.4x a 2^16-2^17-element pass on 2 Zen 4 cores. Bounded,
// so a process with no pass for 10 ms uses no CPU: 0.1 ms of CPU time in the next 500 ms, measured on a
// 2-vCPU AMD EPYC Zen 3 (tests/kernel/test_threads_idle.py). 100 us covers the gap between host ops
// with room; it is not tuned further (on that shared Zen 3 under load, 0 and 100 us could not be told
// apart). MINDSPORE_OFFLOAD_SPIN_US overrides it (read in mindspore_offload/_env.py); 0 sleeps at once.
constexpr std::uint32_t kDefaultSpinMicroseconds = 100;
std::uint32_t get_spin_microseconds();
void set_spin_microseconds(std::uint32_t us);

// Runs fn(ctx, i) for every i in [0, count), the calling thread taking part, and returns when all
// are done. If another caller is using the pool at that moment, runs them all on this thread.
void parallel_run(int count, TaskFn fn, void* ctx);

// Runs fn(ctx, begin, len) over [0, n) split into equal chunks whose lengths are multiples of 16
// elements, one chunk per thread. Below a split size the calling thread does it all (waking threads
// would cost more than they save): grain / 4 with up to two threads, grain / 2 with more. From there
// on chunks may be as short as grain / 8, so a many-core host puts all its threads on a mid-sized
// tensor. For float arrays
// that start 64-byte aligned, no two threads then write the same cache line; otherwise each seam may
// share one (slower, still correct). With a single chunk, fn(ctx, 0, n) runs directly on the calling thread;
// otherwise every chunk runs under the caller's floating-point control (MXCSR on x86, FPCR on aarch64),
// so its rounding and denormal handling do not depend on which thread took the chunk (during a pass the
// caller's is the pass environment, fp_env.h).
void parallel_for(std::size_t n, std::size_t grain, RangeFn fn, void* ctx);

}  // namespace mso
