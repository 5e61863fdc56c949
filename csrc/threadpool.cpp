#include "threadpool.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace mso {
namespace {

int default_threads() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

// Workers and the job they share. Replaced whole (never freed) after fork() or a resize,
// so a child process never waits on a thread or a lock it did not inherit.
struct Pool {
  std::mutex job_mutex;  // one caller at a time
  std::mutex m;
  std::condition_variable work_cv;
  std::condition_variable done_cv;
  unsigned long generation = 0;
  bool stop = false;
  TaskFn fn = nullptr;
  void* ctx = nullptr;
  int count = 0;
  std::atomic<int> next{0};
  int busy_workers = 0;
  int threads;
  bool started = false;

  explicit Pool(int n) : threads(n) {}

  void drain() {
    for (int i; (i = next.fetch_add(1)) < count;) fn(ctx, i);
  }

  void worker() {
    unsigned long seen = 0;
    std::unique_lock<std::mutex> lock(m);
    for (;;) {
      work_cv.wait(lock, [&] { return stop || generation != seen; });
      if (stop) return;
      seen = generation;
      lock.unlock();
      drain();
      lock.lock();
      if (--busy_workers == 0) done_cv.notify_one();
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
  {
    std::lock_guard<std::mutex> lock(p->m);
    if (!p->started) p->start();
    p->fn = fn;
    p->ctx = ctx;
    p->count = count;
    p->next.store(0);
    p->busy_workers = p->threads - 1;
    ++p->generation;
  }
  p->work_cv.notify_all();
  p->drain();
  std::unique_lock<std::mutex> lock(p->m);
  p->done_cv.wait(lock, [&] { return p->busy_workers == 0; });
}

}  // namespace mso
