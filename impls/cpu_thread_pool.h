// cpu_thread_pool: the small persistent thread pool of cpu_cached (internal to impls/).
//
// `threads - 1` workers plus the calling thread share each run(); items are claimed one at
// a time from an atomic counter, so uneven items balance themselves. A decode step is a
// few runs microseconds apart, so after a run the workers poll for up to kSpin before
// sleeping on a condition variable: handing a run to a polling worker is cheaper than
// waking a sleeping one (measured: 2 threads took 40 us for a step that 1 thread did in
// 20 us, when every run woke the workers from sleep). Polling yields the core at each
// turn, never pause-spins: on a shared machine a spinning thread took the core that the
// thread with the work needed (2 threads became 5x slower than 1 at load 6 on 2 cores).
//
// Contract (tested in tests/impls/test_cpu_thread_pool.cpp):
//   - every item in [0, n) is called exactly once, each with a thread index in [0, size());
//   - run() returns only after every call has returned;
//   - n <= 0 calls nothing; n == 1, parallel == false or a 1-thread pool run on the caller;
//   - run() is not reentrant on the same pool: an fn may call run(..., parallel = false) of
//     its own pool (which runs serially on the calling thread) or run() of another pool,
//     never a parallel run() of the pool that is running it;
//   - fn must not throw: the pool does not propagate exceptions (one thrown on a worker
//     thread ends the process through std::terminate).
#ifndef KVBENCH_IMPLS_CPU_THREAD_POOL_H_
#define KVBENCH_IMPLS_CPU_THREAD_POOL_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace kvbench {
namespace cpu {

class WorkerPool {
 public:
  // threads >= 1 (values below 1 act as 1).
  explicit WorkerPool(int threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(item, thread) for every item in [0, n), thread in [0, size()), and returns
  // when all calls have returned; on the calling thread alone when !parallel (work too
  // small to pay for the hand-off). fn must not throw.
  template <typename Fn>
  void run(int n, Fn& fn, bool parallel = true) {
    run_erased(
        n, [](void* f, int item, int thread) { (*static_cast<Fn*>(f))(item, thread); }, &fn,
        parallel);
  }

 private:
  using Call = void (*)(void*, int, int);
  static constexpr std::chrono::microseconds kSpin{50};

  void run_erased(int n, Call call, void* ctx, bool parallel);
  void drain(int thread);
  // RETURNS: once generation_ differs from `seen`: polling for kSpin, then asleep.
  std::uint64_t wait_for_run(std::uint64_t seen);
  void work(int thread);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_;  // a new run, or stop
  // The current run; written by the caller before generation_ moves, read by workers after.
  Call call_ = nullptr;
  void* ctx_ = nullptr;
  int items_ = 0;
  std::atomic<int> next_{0};
  std::atomic<int> busy_{0};  // workers still inside the current run
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace cpu
}  // namespace kvbench

#endif  // KVBENCH_IMPLS_CPU_THREAD_POOL_H_
