// Unit tests of cpu_cached's thread pool (impls/cpu_thread_pool.h), alone: every item runs
// exactly once on a thread index in range, for any thread count and item count (zero and
// one included), back to back and after the workers fell asleep, nested as the contract
// allows. The pool does not propagate exceptions (fn must not throw: see the header), so
// there is nothing of that kind to test.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <thread>
#include <vector>

#include "impls/cpu_thread_pool.h"

namespace kvbench {
namespace {

using cpu::WorkerPool;

// Runs n items on `pool` and checks that each ran exactly once, on a thread in range.
void expect_each_once(WorkerPool& pool, int n, bool parallel = true) {
  std::vector<std::atomic<int>> calls(static_cast<std::size_t>(n > 0 ? n : 0));
  for (auto& c : calls) c.store(0);
  std::atomic<int> bad_thread{0};
  auto fn = [&](int item, int thread) {
    if (thread < 0 || thread >= pool.size()) bad_thread.fetch_add(1);
    if (!parallel && thread != 0) bad_thread.fetch_add(1);
    calls[static_cast<std::size_t>(item)].fetch_add(1);
  };
  pool.run(n, fn, parallel);
  EXPECT_EQ(bad_thread.load(), 0) << "n = " << n << ", threads = " << pool.size();
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(calls[static_cast<std::size_t>(i)].load(), 1)
        << "item " << i << " of " << n << ", threads = " << pool.size();
  }
}

TEST(CpuThreadPool, SizeCountsTheCaller) {
  EXPECT_EQ(WorkerPool(1).size(), 1);
  EXPECT_EQ(WorkerPool(2).size(), 2);
  EXPECT_EQ(WorkerPool(7).size(), 7);
  EXPECT_EQ(WorkerPool(0).size(), 1);  // below 1 acts as 1
}

TEST(CpuThreadPool, EveryItemRunsExactlyOnceForAnyThreadAndItemCount) {
  for (int threads : {1, 2, 3, 4, 8}) {
    WorkerPool pool(threads);
    for (int n : {0, 1, 2, 3, 7, 64, 1000}) {
      expect_each_once(pool, n);
      expect_each_once(pool, n, /*parallel=*/false);
    }
  }
}

TEST(CpuThreadPool, ZeroAndNegativeItemCountsCallNothing) {
  WorkerPool pool(4);
  int calls = 0;
  auto fn = [&](int, int) { ++calls; };
  pool.run(0, fn);
  pool.run(-3, fn);
  EXPECT_EQ(calls, 0);
}

TEST(CpuThreadPool, RunReturnsOnlyAfterEveryCallReturned) {
  WorkerPool pool(4);
  for (int round = 0; round < 50; ++round) {
    std::atomic<int> done{0};
    auto fn = [&](int item, int) {
      if (item % 3 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
      done.fetch_add(1);
    };
    pool.run(16, fn);
    ASSERT_EQ(done.load(), 16) << "round " << round;
  }
}

TEST(CpuThreadPool, ManyRunsBackToBackAndAfterTheWorkersSleep) {
  // Back to back: the workers are still polling. After a pause of many kSpin: asleep on
  // the condition variable, and the next run must still wake them (and lose no item).
  WorkerPool pool(3);
  for (int round = 0; round < 2000; ++round) expect_each_once(pool, 5);
  for (int round = 0; round < 5; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    expect_each_once(pool, 9);
  }
}

TEST(CpuThreadPool, MoreThanOneThreadTakesItemsWhenTheyWait) {
  // Items that block until a second thread arrives: finishes only if the workers do run
  // items (a pool that ran everything on the caller would deadlock; the wait is bounded).
  WorkerPool pool(2);
  std::atomic<int> arrived{0};
  std::atomic<bool> met{false};
  auto fn = [&](int, int) {
    arrived.fetch_add(1);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (arrived.load() < 2 && std::chrono::steady_clock::now() < until) std::this_thread::yield();
    if (arrived.load() >= 2) met.store(true);
  };
  pool.run(2, fn);
  EXPECT_TRUE(met.load());
}

TEST(CpuThreadPool, NestedRunsThatTheContractAllows) {
  // An fn may run its own pool serially (parallel = false) or another pool in parallel.
  WorkerPool outer(3);
  WorkerPool inner(2);
  constexpr int kOuter = 12, kInner = 10;
  std::vector<std::atomic<int>> own(kOuter * kInner), other(kOuter * kInner);
  for (auto& c : own) c.store(0);
  for (auto& c : other) c.store(0);
  std::atomic<int> serial_thread_bad{0};
  std::atomic<int> inner_busy{0};  // `inner` is shared by all outer threads: one at a time
  std::atomic<int> overlap{0};
  auto fn = [&](int i, int) {
    auto own_fn = [&](int j, int thread) {
      if (thread != 0) serial_thread_bad.fetch_add(1);
      own[static_cast<std::size_t>(i * kInner + j)].fetch_add(1);
    };
    outer.run(kInner, own_fn, /*parallel=*/false);
    auto other_fn = [&](int j, int) { other[static_cast<std::size_t>(i * kInner + j)].fetch_add(1); };
    // Serialize the use of `inner` (run() is not reentrant on one pool).
    int expected = 0;
    while (!inner_busy.compare_exchange_weak(expected, 1)) {
      expected = 0;
      std::this_thread::yield();
    }
    inner.run(kInner, other_fn);
    if (inner_busy.exchange(0) != 1) overlap.fetch_add(1);
  };
  outer.run(kOuter, fn);
  EXPECT_EQ(serial_thread_bad.load(), 0);
  EXPECT_EQ(overlap.load(), 0);
  for (std::size_t k = 0; k < own.size(); ++k) {
    EXPECT_EQ(own[k].load(), 1) << "serial nested item " << k;
    EXPECT_EQ(other[k].load(), 1) << "nested item of another pool " << k;
  }
}

TEST(CpuThreadPool, DestroysCleanlyWhetherWorkersPollOrSleep) {
  for (int i = 0; i < 20; ++i) {
    auto pool = std::make_unique<WorkerPool>(4);
    expect_each_once(*pool, 8);
    if (i % 2 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    pool.reset();  // joins: a hang here fails the test by its timeout
  }
  WorkerPool never_used(3);  // destroyed before any run
}

}  // namespace
}  // namespace kvbench
