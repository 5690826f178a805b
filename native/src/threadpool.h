// A persistent thread pool whose hand-off takes microseconds: idle workers spin on a job counter for a short
// while (kernels of one model run follow each other within microseconds) before sleeping on a condition
// variable, so a busy run never pays a futex wake-up and an idle process does not burn the CPU.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace mhf {

using TaskFn = void (*)(void* ctx, int task);

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return (int)workers_.size() + 1; }
  // Runs fn(ctx, 0..tasks-1) on the workers and the calling thread; returns when every task is done.
  // A call made while another is running (another JS thread) runs its tasks on the calling thread alone.
  void run(int tasks, TaskFn fn, void* ctx);

 private:
  struct Slot {
    std::atomic<TaskFn> fn{nullptr};
    std::atomic<void*> ctx{nullptr};
    std::atomic<uint32_t> tasks{0};
    std::atomic<uint32_t> gen{0};
    std::atomic<uint32_t> done{0};
  };
  // (generation << 32) | next task index of the current job: a task is claimed by a compare-and-swap on it.
  std::atomic<uint64_t> state_{0};
  Slot slots_[2];
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
  std::mutex mutex_, run_mutex_;
  std::condition_variable cv_;
  std::vector<std::thread> workers_;

  void worker();
  bool claim_and_run();
};

// The process-wide pool (created on first use with the default thread count).
ThreadPool& pool();
int default_threads();
void set_threads(int n);

}  // namespace mhf
