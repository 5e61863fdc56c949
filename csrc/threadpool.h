// A persistent pool of worker threads: no thread is started per call on the hot path.
#pragma once

namespace mso {

using TaskFn = void (*)(void* ctx, int index);

int get_num_threads();
void set_num_threads(int n);  // n >= 1; the calling thread counts as one

// Runs fn(ctx, i) for every i in [0, count), the calling thread taking part, and returns when all
// are done. If another caller is using the pool at that moment, runs them all on this thread.
void parallel_run(int count, TaskFn fn, void* ctx);

}  // namespace mso
