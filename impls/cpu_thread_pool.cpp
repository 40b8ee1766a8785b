// cpu_thread_pool: see cpu_thread_pool.h.
#include "impls/cpu_thread_pool.h"

namespace kvbench {
namespace cpu {

WorkerPool::WorkerPool(int threads) {
  for (int w = 0; w + 1 < threads; ++w) workers_.emplace_back([this, w] { work(w); });
}

WorkerPool::~WorkerPool() {
  stop_.store(true, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(mu_);
    generation_.fetch_add(1, std::memory_order_release);  // publishes stop_
  }
  wake_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void WorkerPool::run_erased(int n, Call call, void* ctx, bool parallel) {
  if (workers_.empty() || n <= 1 || !parallel) {
    for (int i = 0; i < n; ++i) call(ctx, i, 0);
    return;
  }
  // No worker is inside a run here (the last one ended with busy_ == 0), so the fields
  // can be written; the release on generation_ publishes them.
  call_ = call;
  ctx_ = ctx;
  items_ = n;
  next_.store(0, std::memory_order_relaxed);
  busy_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(mu_);  // so a worker about to sleep cannot miss it
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  drain(size() - 1);  // the caller is the last thread
  // The workers finish their last items about when the caller does.
  while (busy_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
}

void WorkerPool::drain(int thread) {
  for (int i = next_.fetch_add(1); i < items_; i = next_.fetch_add(1)) call_(ctx_, i, thread);
}

std::uint64_t WorkerPool::wait_for_run(std::uint64_t seen) {
  const auto until = std::chrono::steady_clock::now() + kSpin;
  do {
    const std::uint64_t now = generation_.load(std::memory_order_acquire);
    if (now != seen) return now;
    std::this_thread::yield();
  } while (std::chrono::steady_clock::now() < until);
  std::unique_lock<std::mutex> lock(mu_);
  wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
  return generation_.load(std::memory_order_acquire);
}

void WorkerPool::work(int thread) {
  for (std::uint64_t seen = 0;;) {
    seen = wait_for_run(seen);
    if (stop_.load(std::memory_order_relaxed)) return;
    drain(thread);
    busy_.fetch_sub(1, std::memory_order_release);
  }
}

}  // namespace cpu
}  // namespace kvbench
