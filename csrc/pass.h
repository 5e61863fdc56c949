// The one driver every pass over a tensor goes through (the float32 pass, the master pass, the lab's
// probes): the optional lock on the tensor's state, the body split over the thread pool, then the
// tensor's last elements rounded as MindSpore rounds them. A pass supplies two callables over element
// ranges, chunk(begin, len) (a level's kernel from the dispatch table) and leftover(begin, len).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

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
constexpr std::size_t kLockStripes = 64;
inline std::size_t stripe_of(const void* state) { return (reinterpret_cast<std::uintptr_t>(state) >> 6) % kLockStripes; }
inline std::mutex& lock_stripe(std::size_t stripe) {
  static std::mutex stripes[kLockStripes];
  return stripes[stripe];
}
inline std::mutex& lock_for(const void* state) { return lock_stripe(stripe_of(state)); }

// Where a whole tensor's body ends and its leftovers begin.
inline std::size_t body_of(std::size_t n, std::size_t leftover_from) {
  return leftover_from == kWholeTensor ? n - n % kMindSporeVectorWidth : std::min(leftover_from, n);
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
  const std::size_t body = body_of(n, leftover_from);
  std::unique_lock<std::mutex> lock;
  if (use_locking) lock = std::unique_lock<std::mutex>(lock_for(state));
  const RangeFn run = [](void* ctx, std::size_t begin, std::size_t len) {
    (*static_cast<const Chunk*>(ctx))(begin, len);
  };
  parallel_for(body, tuning().grain, run, const_cast<void*>(static_cast<const void*>(&chunk)));
  leftover(body, n - body);
}

// Many whole tensors' passes as one (a bucket): their bodies, laid end to end, are split over the pool in
// one parallel_for, so the lot pays one wake-up; then each tensor's leftovers, on the calling thread.
// chunk(i, begin, len) and leftover(i, begin, len) act on tensor i, whose element count is sizes[i]. Every
// element is computed by the same kernel as in run_pass, so each tensor gets run_pass's bits; only where
// the threads' chunks begin differs. With use_locking the pass holds every state's lock, taken in stripe
// order (two buckets sharing stripes cannot deadlock).
template <class Chunk, class Leftover>
void run_passes(std::size_t count, const std::size_t* sizes, const void* const* states, bool use_locking,
                const Chunk& chunk, const Leftover& leftover) {
  if (count == 0) return;
  const PassFpEnv fp_env;
  std::vector<std::size_t> starts(count + 1, 0);  // tensor i's body is [starts[i], starts[i + 1]) end to end
  for (std::size_t i = 0; i < count; ++i) starts[i + 1] = starts[i] + body_of(sizes[i], kWholeTensor);
  std::vector<std::unique_lock<std::mutex>> locks;
  if (use_locking) {
    bool taken[kLockStripes] = {};
    for (std::size_t i = 0; i < count; ++i) taken[stripe_of(states[i])] = true;
    for (std::size_t stripe = 0; stripe < kLockStripes; ++stripe) {
      if (taken[stripe]) locks.emplace_back(lock_stripe(stripe));
    }
  }
  struct Context {
    const Chunk* chunk;
    const std::size_t* starts;
    std::size_t count;
  } context{&chunk, starts.data(), count};
  const RangeFn run = [](void* ctx, std::size_t begin, std::size_t len) {
    const Context& c = *static_cast<const Context*>(ctx);
    // The first tensor whose body reaches past begin, then on through the range.
    std::size_t i = static_cast<std::size_t>(std::upper_bound(c.starts, c.starts + c.count + 1, begin) - c.starts) - 1;
    for (const std::size_t end = begin + len; begin < end; ++i) {
      if (c.starts[i + 1] <= begin) continue;  // an empty body (a tensor under 8 elements)
      const std::size_t piece = std::min(end, c.starts[i + 1]) - begin;
      (*c.chunk)(i, begin - c.starts[i], piece);
      begin += piece;
    }
  };
  parallel_for(starts[count], tuning().grain, run, &context);
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t body = starts[i + 1] - starts[i];
    leftover(i, body, sizes[i] - body);
  }
}

}  // namespace mso
