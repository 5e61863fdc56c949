// A persistent pool of worker threads: no thread is started per call on the hot path.
#pragma once

#include <cstddef>

namespace mso {

using TaskFn = void (*)(void* ctx, int index);
using RangeFn = void (*)(void* ctx, std::size_t begin, std::size_t len);

int get_num_threads();
void set_num_threads(int n);  // n >= 1; the calling thread counts as one

// Runs fn(ctx, i) for every i in [0, count), the calling thread taking part, and returns when all
// are done. If another caller is using the pool at that moment, runs them all on this thread.
void parallel_run(int count, TaskFn fn, void* ctx);

// Runs fn(ctx, begin, len) over [0, n) split into equal chunks whose lengths are multiples of 16
// elements, one chunk per thread. Below a split size the calling thread does it all (waking threads
// would cost more than they save): 2 * grain with up to two threads, grain / 2 with more. From there
// on chunks may be as short as grain / 8, so a many-core host puts all its threads on a mid-sized
// tensor. For float arrays
// that start 64-byte aligned, no two threads then write the same cache line; otherwise each seam may
// share one (slower, still correct). With a single chunk, fn(ctx, 0, n) runs directly on the calling thread;
// otherwise every chunk runs under the caller's floating-point control (MXCSR on x86, FPCR on aarch64),
// so its rounding and denormal handling do not depend on which thread took the chunk (during a pass the
// caller's is the pass environment, fp_env.h).
void parallel_for(std::size_t n, std::size_t grain, RangeFn fn, void* ctx);

}  // namespace mso
