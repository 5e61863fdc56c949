// The one driver every pass over a tensor goes through (the float32 pass, the master pass, the lab's
// probes): the optional lock on the tensor's state, the body split over the thread pool, then the
// tensor's last elements rounded as MindSpore rounds them. A pass supplies two callables over element
// ranges, chunk(begin, len) (a level's kernel from the dispatch table) and leftover(begin, len).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "fp_env.h"
#include "threadpool.h"
#include "tuning.h"

namespace mso {

// MindSpore's CPU kernels run whole groups of this many floats and round the rest (n mod 8 of a whole
// tensor) in a scalar loop of their own (adam_leftover.cpp).
constexpr std::size_t kMindSporeVectorWidth = 8;

// `leftover_from` for a whole tensor: its last n mod 8 elements are the leftovers.
constexpr std::size_t kWholeTensor = ~std::size_t{0};

// One of 64 locks, chosen by the state's address: passes on different states rarely share one.
inline std::mutex& lock_for(const void* state) {
  static std::mutex stripes[64];
  return stripes[(reinterpret_cast<std::uintptr_t>(state) >> 6) % 64];
}

// Runs chunk over [0, body) on the pool (threadpool.h's parallel_for, chunks on whole 16-element
// boundaries), then leftover(body, n - body) on the calling thread, where body is where the leftovers
// begin: n - n mod 8 for a whole tensor, else leftover_from (at most n). A slice of a tensor passes
// where the whole tensor's leftovers fall in it (n: none), so slices give the whole tensor's bits.
// With use_locking, the whole pass holds lock_for(state). The whole pass, leftovers included, computes in
// the fixed FP environment of fp_env.h, whatever the caller's.
template <class Chunk, class Leftover>
void run_pass(std::size_t n, std::size_t leftover_from, const void* state, bool use_locking, const Chunk& chunk,
              const Leftover& leftover) {
  if (n == 0) return;
  const PassFpEnv fp_env;
  const std::size_t body =
      leftover_from == kWholeTensor ? n - n % kMindSporeVectorWidth : std::min(leftover_from, n);
  std::unique_lock<std::mutex> lock;
  if (use_locking) lock = std::unique_lock<std::mutex>(lock_for(state));
  const RangeFn run = [](void* ctx, std::size_t begin, std::size_t len) {
    (*static_cast<const Chunk*>(ctx))(begin, len);
  };
  parallel_for(body, tuning().grain, run, const_cast<void*>(static_cast<const void*>(&chunk)));
  leftover(body, n - body);
}

}  // namespace mso
