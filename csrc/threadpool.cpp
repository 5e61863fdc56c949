#include "threadpool.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "fp_env.h"

namespace mso {
namespace {

// How long a thread spins for the next job (a worker) or for its helpers to finish (the caller) before
// it sleeps; threadpool.h says why and what it was measured on.
std::atomic<std::uint32_t> g_spin_us{kDefaultSpinMicroseconds};

// One turn of a spin-wait: tells the core (and, in a VM, the hypervisor) that this thread is waiting.
inline void spin_pause() {
#if defined(__x86_64__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("isb" ::: "memory");  // a short, predictable stall (yield is a no-op on many cores)
#endif
}

// Polls ready() until it holds or the spin bound has passed; returns its last answer. The clock is read
// once every 16 polls, so a bound of 0 polls once and returns.
template <class Ready>
bool spin_until(const Ready& ready) {
  const std::uint32_t us = g_spin_us.load(std::memory_order_relaxed);
  if (ready() || us == 0) return ready();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(us);
  for (;;) {
    for (int i = 0; i < 16; ++i) {
      if (ready()) return true;
      spin_pause();
    }
    if (std::chrono::steady_clock::now() >= deadline) return ready();
  }
}

int default_threads() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

// Workers and the job they share. Replaced whole (never freed) after fork() or a resize,
// so a child process never waits on a thread or a lock it did not inherit.
//
// Tasks are claimed from `ticket` (the job's generation in the high half, the next index in the low
// half), and the caller waits for tasks done, not for workers: on a shared machine a worker may not
// be scheduled for milliseconds, and then the caller simply runs its tasks too and returns. A worker
// that wakes late copies the job under the lock and cannot claim a task of a later job.
//
// Between jobs a worker first spins on `ticket` (whose high half changes when a job is posted) for the
// spin bound, and only then sleeps on work_cv; the caller likewise spins on `done` before it sleeps on
// done_cv. A job posted while its workers spin costs no system call on either side: notify_all and
// notify_one find no sleeper.
struct Pool {
  std::mutex job_mutex;  // one caller at a time
  std::mutex m;
  std::condition_variable work_cv;
  std::condition_variable done_cv;
  std::uint32_t generation = 0;
  bool stop = false;
  TaskFn fn = nullptr;
  void* ctx = nullptr;
  int count = 0;
  std::atomic<std::uint64_t> ticket{0};
  std::atomic<int> done{0};
  int threads;
  bool started = false;

  explicit Pool(int n) : threads(n) {}

  // Runs tasks of job `gen` until none is left unclaimed.
  void drain(std::uint32_t gen, TaskFn f, void* c, int n) {
    std::uint64_t t = ticket.load(std::memory_order_acquire);
    for (;;) {
      const auto index = static_cast<int>(t & 0xffffffffu);
      if (static_cast<std::uint32_t>(t >> 32) != gen || index >= n) return;
      if (!ticket.compare_exchange_weak(t, t + 1, std::memory_order_acq_rel)) continue;
      f(c, index);
      if (done.fetch_add(1, std::memory_order_acq_rel) + 1 == n) {
        std::lock_guard<std::mutex> lock(m);  // so the caller cannot miss this between its check and its wait
        done_cv.notify_one();
      }
      t = ticket.load(std::memory_order_acquire);
    }
  }

  void worker() {
    std::uint32_t seen = 0;
    std::unique_lock<std::mutex> lock(m);
    for (;;) {
      if (!stop && generation == seen) {
        lock.unlock();
        spin_until([&] { return static_cast<std::uint32_t>(ticket.load(std::memory_order_acquire) >> 32) != seen; });
        lock.lock();
      }
      work_cv.wait(lock, [&] { return stop || generation != seen; });
      if (stop) return;
      seen = generation;
      const TaskFn f = fn;
      void* const c = ctx;
      const int n = count;
      lock.unlock();
      drain(seen, f, c, n);
      lock.lock();
    }
  }

  void start() {  // lazily, so a pool that is never used costs no threads
    for (int i = 1; i < threads; ++i) std::thread([this] { worker(); }).detach();
    started = true;
  }

  void shut_down() {
    std::lock_guard<std::mutex> job(job_mutex);
    std::lock_guard<std::mutex> lock(m);
    stop = true;
    work_cv.notify_all();
  }
};

std::atomic<Pool*> g_pool{nullptr};
std::mutex g_resize_mutex;

void after_fork_in_child() { g_pool.store(new Pool(g_pool.load()->threads)); }

Pool* pool() {
  Pool* p = g_pool.load(std::memory_order_acquire);
  if (p != nullptr) return p;
  std::lock_guard<std::mutex> lock(g_resize_mutex);
  p = g_pool.load();
  if (p == nullptr) {
    p = new Pool(default_threads());
    pthread_atfork(nullptr, nullptr, after_fork_in_child);
    g_pool.store(p, std::memory_order_release);
  }
  return p;
}

}  // namespace

int get_num_threads() { return pool()->threads; }

std::uint32_t get_spin_microseconds() { return g_spin_us.load(std::memory_order_relaxed); }

void set_spin_microseconds(std::uint32_t us) { g_spin_us.store(us, std::memory_order_relaxed); }

void set_num_threads(int n) {
  pool();
  std::lock_guard<std::mutex> lock(g_resize_mutex);
  Pool* old = g_pool.load();
  if (n == old->threads) return;
  g_pool.store(new Pool(std::max(1, n)), std::memory_order_release);
  old->shut_down();  // its detached workers exit; the object is left for any late reader
}

void parallel_run(int count, TaskFn fn, void* ctx) {
  Pool* p = pool();
  std::unique_lock<std::mutex> job(p->job_mutex, std::try_to_lock);
  if (count <= 1 || p->threads <= 1 || !job.owns_lock() || p->stop) {
    for (int i = 0; i < count; ++i) fn(ctx, i);
    return;
  }
  std::uint32_t gen;
  {
    std::lock_guard<std::mutex> lock(p->m);
    if (!p->started) p->start();
    p->fn = fn;
    p->ctx = ctx;
    p->count = count;
    gen = ++p->generation;
    p->done.store(0, std::memory_order_relaxed);
    p->ticket.store(static_cast<std::uint64_t>(gen) << 32, std::memory_order_release);
  }
  p->work_cv.notify_all();
  p->drain(gen, fn, ctx, count);
  if (spin_until([&] { return p->done.load(std::memory_order_acquire) == count; })) return;
  std::unique_lock<std::mutex> lock(p->m);
  p->done_cv.wait(lock, [&] { return p->done.load(std::memory_order_acquire) == count; });
}

namespace {

struct Ranges {
  std::size_t n;
  std::size_t chunk;
  RangeFn fn;
  void* ctx;
  FpControl control;  // the caller's floating-point control (MXCSR or FPCR: rounding, flushing)
};

void run_range(void* ctx, int index) {
  const Ranges& r = *static_cast<const Ranges*>(ctx);
  const std::size_t begin = static_cast<std::size_t>(index) * r.chunk;
  if (begin >= r.n) return;
  const FpControl saved = fp_control();  // a worker computes as the caller would, then restores its own
  const bool differs = ((saved ^ r.control) & kFpControlBits) != 0;
  if (differs) set_fp_control(r.control);
  r.fn(r.ctx, begin, std::min(r.chunk, r.n - begin));
  if (differs) set_fp_control(saved);
}

}  // namespace

// Once a pass is split at all, its chunks may be this many times shorter than the grain. Measured on a
// 16-core Intel Xeon (CHANGELOG.md, 2026-11-27; benchmarks/tuning/bench_grain.py): chunks of 2^14
// elements ran a 2^18-element apply pass 2.6x and a 2^20 one 1.5x faster on 16 threads than chunks of
// 2^17, level with DeepSpeed's OpenMP loop.
constexpr std::size_t kChunksPerGrain = 8;

// The shortest pass worth splitting. With two threads, now that the workers spin for the next pass
// (kSpin), a split pays from 2^15 elements: on 2 Zen 3 vCPUs (AMD EPYC, 32 MiB L3, quiet; 2026-12-02,
// docs/results/2026-12-02-amd2-spin/) splitting took 0.83-0.89 of one thread's time at 2^15, 0.63-0.69
// at 2^16 and 0.56-0.57 at 2^17, and was level (0.97-1.12) at 2^13-2^14; so from grain / 4. Without the
// spin (MINDSPORE_OFFLOAD_SPIN_US=0) the same splits cost 1.1-1.75x: a sleeping worker is slow to wake.
// With four or more threads: on 4-16 Intel cores (before the spin) splitting 2^16 took 0.79-0.90 of the
// time and 2^17 0.49-0.57, so from grain / 2 there (not remeasured with the spin: no such host here).
static std::size_t split_min(std::size_t grain, int threads) { return threads <= 2 ? grain / 4 : grain / 2; }

void parallel_for(std::size_t n, std::size_t grain, RangeFn fn, void* ctx) {
  if (n == 0) return;
  const std::size_t shortest = std::max<std::size_t>(1, grain / kChunksPerGrain);
  const int threads = get_num_threads();
  const std::size_t by_size = n < split_min(grain, threads) ? 1 : std::max<std::size_t>(1, n / shortest);
  const int tasks = static_cast<int>(std::min<std::size_t>(threads, by_size));
  if (tasks <= 1) {
    fn(ctx, 0, n);
    return;
  }
  Ranges ranges{n, ((n + tasks - 1) / tasks + 15) / 16 * 16, fn, ctx, fp_control()};
  parallel_run(tasks, run_range, &ranges);
}

}  // namespace mso
