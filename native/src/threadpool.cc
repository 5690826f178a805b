#include "threadpool.h"

#include <sched.h>

#include <chrono>
#include <cstdlib>
#include <memory>

namespace mhf {

static inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// How long an idle worker spins before it sleeps: longer than the gap between two kernels of a model run.
static constexpr auto SPIN = std::chrono::microseconds(300);

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < threads; i++) workers_.emplace_back([this] { worker(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true);
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

// Claims one task of the current job and runs it; false when the job has no task left.
bool ThreadPool::claim_and_run() {
  uint64_t s = state_.load(std::memory_order_acquire);
  for (;;) {
    const uint32_t gen = (uint32_t)(s >> 32), idx = (uint32_t)s;
    Slot& slot = slots_[gen & 1];
    // The slot is written before the state that names it; a stale read fails the compare-and-swap below.
    if (slot.gen.load(std::memory_order_acquire) != gen || idx >= slot.tasks.load(std::memory_order_relaxed))
      return false;
    const TaskFn fn = slot.fn.load(std::memory_order_relaxed);
    void* ctx = slot.ctx.load(std::memory_order_relaxed);
    if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
      fn(ctx, (int)idx);
      slot.done.fetch_add(1, std::memory_order_release);
      return true;
    }
  }
}

void ThreadPool::worker() {
  uint32_t seen = 0;
  for (;;) {
    auto gen_now = [&] { return (uint32_t)(state_.load(std::memory_order_acquire) >> 32); };
    if (gen_now() == seen) {
      const auto until = std::chrono::steady_clock::now() + SPIN;
      for (int i = 0; gen_now() == seen && !stop_.load(std::memory_order_relaxed); i++) {
        cpu_relax();
        if ((i & 255) == 255 && std::chrono::steady_clock::now() > until) break;
      }
      if (gen_now() == seen) {
        std::unique_lock<std::mutex> lock(mutex_);
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        cv_.wait(lock, [&] { return stop_.load() || gen_now() != seen; });
        sleepers_.fetch_sub(1, std::memory_order_seq_cst);
      }
    }
    if (stop_.load()) return;
    seen = gen_now();
    while (claim_and_run()) {
    }
  }
}

void ThreadPool::run(int tasks, TaskFn fn, void* ctx) {
  if (tasks <= 0) return;
  std::unique_lock<std::mutex> guard(run_mutex_, std::try_to_lock);
  if (workers_.empty() || tasks == 1 || !guard.owns_lock()) {
    for (int t = 0; t < tasks; t++) fn(ctx, t);
    return;
  }
  const uint32_t gen = (uint32_t)(state_.load(std::memory_order_relaxed) >> 32) + 1;
  Slot& slot = slots_[gen & 1];
  slot.fn.store(fn, std::memory_order_relaxed);
  slot.ctx.store(ctx, std::memory_order_relaxed);
  slot.tasks.store((uint32_t)tasks, std::memory_order_relaxed);
  slot.done.store(0, std::memory_order_relaxed);
  slot.gen.store(gen, std::memory_order_release);
  state_.store((uint64_t)gen << 32, std::memory_order_seq_cst);
  if (sleepers_.load(std::memory_order_seq_cst) > 0) {
    { std::lock_guard<std::mutex> lock(mutex_); }
    cv_.notify_all();
  }
  while (claim_and_run()) {
  }
  while (slot.done.load(std::memory_order_acquire) < (uint32_t)tasks) cpu_relax();
}

int default_threads() {
  if (const char* env = std::getenv("MHAFUSE_NATIVE_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set) > 0 ? CPU_COUNT(&set) : 1;
  const unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? (int)n : 1;
}

static std::unique_ptr<ThreadPool> g_pool;
static std::mutex g_pool_mutex;

ThreadPool& pool() {
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  if (!g_pool) g_pool = std::make_unique<ThreadPool>(default_threads());
  return *g_pool;
}

void set_threads(int n) {
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  if (n < 1) n = 1;
  if (g_pool && g_pool->threads() == n) return;
  g_pool.reset();
  g_pool = std::make_unique<ThreadPool>(n);
}

}  // namespace mhf
