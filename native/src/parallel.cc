// Work below ~32K elements runs on the calling thread: a hand-off costs a few microseconds, which such small
// kernels do not repay. Above it the rows (or elements) are cut into one contiguous chunk per task.
#include "parallel.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "threadpool.h"

namespace mhf {

namespace {

constexpr int64_t MIN_PER_TASK = 16384;

// Splits [0, n) (in units of `unit` elements of work each) into chunks and runs fn(begin, end) on the pool.
template <typename F>
void split(int64_t n, int64_t unit, F fn) {
  ThreadPool& tp = pool();
  const int64_t by_size = std::max<int64_t>(1, n * unit / MIN_PER_TASK);
  const int64_t tasks = std::min<int64_t>({n, by_size, (int64_t)tp.threads() * 4});
  if (tasks <= 1) {
    fn(0, n);
    return;
  }
  struct Ctx {
    F* fn;
    int64_t n, tasks;
  } ctx{&fn, n, tasks};
  tp.run((int)tasks, [](void* p, int t) {
    const Ctx& c = *static_cast<Ctx*>(p);
    const int64_t b = c.n * t / c.tasks, e = c.n * (t + 1) / c.tasks;
    if (e > b) (*c.fn)(b, e);
  }, &ctx);
}

}  // namespace

void layer_norm(const Kernels& k, const float* x, float* y, int64_t rows, int d, float eps, const float* gamma,
                const float* beta, float* mean, float* inv_std) {
  split(rows, d, [&](int64_t b, int64_t e) {
    k.layer_norm(x + b * d, y + b * d, e - b, d, eps, gamma, beta, mean ? mean + b : nullptr,
                 inv_std ? inv_std + b : nullptr);
  });
}

void skip_layer_norm(const Kernels& k, const float* x, const float* skip, int64_t skip_rows, const float* bias,
                     const float* gamma, const float* beta, float* y, float* sum_out, int64_t rows, int d,
                     float eps) {
  split(rows, d, [&](int64_t b, int64_t e) {
    k.skip_layer_norm(x + b * d, skip, skip_rows, bias, gamma, beta, y + b * d, sum_out ? sum_out + b * d : nullptr,
                      e - b, d, eps, b);
  });
}

void softmax(const Kernels& k, const float* x, float* y, int64_t rows, int d) {
  split(rows, d, [&](int64_t b, int64_t e) { k.softmax(x + b * d, y + b * d, e - b, d); });
}

void activation(const Kernels& k, const float* x, float* y, int64_t n, const float* bias, int64_t bias_len,
                int act) {
  // Chunks of whole 64-element runs keep every chunk's vectors aligned with the start of the array.
  const int64_t units = (n + 63) / 64;
  split(units, 64 * (act ? 8 : 1), [&](int64_t b, int64_t e) {
    const int64_t i0 = b * 64, i1 = std::min(n, e * 64);
    k.activation(x + i0, y + i0, i1 - i0, bias, bias_len, i0, act);
  });
}

void add(const Kernels& k, const float* a, const float* b, float* y, int64_t n, int64_t b_len) {
  const int64_t units = (n + 63) / 64;
  split(units, 64, [&](int64_t s, int64_t e) {
    const int64_t i0 = s * 64, i1 = std::min(n, e * 64);
    k.add(a + i0, b, y + i0, i1 - i0, b_len, i0);
  });
}

void attention(const Kernels& k, const AttentionProblem& p) {
  // Units: (batch, head, block of query rows). Each unit repacks the K and V it reads, so blocks of 128 rows
  // (a whole BERT sequence) read them once per head — 5–8% faster than 64 at [8,12,128,64] and [1,12,512,64]
  // on the 2-vCPU dev box (an in-process A/B of two addon builds); shorter blocks are used only when there
  // would be too few units for the threads.
  int maxSeq = p.seqQ;
  if (p.cuSeqlens) {
    maxSeq = 0;
    for (int b = 0; b < p.batch; b++) maxSeq = std::max(maxSeq, p.cuSeqlens[b + 1] - p.cuSeqlens[b]);
  }
  if (maxSeq <= 0 || p.batch <= 0 || p.heads <= 0) return;
  const int threads = pool().threads();
  int rows = 128;
  while (rows > 8 && (int64_t)p.batch * p.heads * ((maxSeq + rows - 1) / rows) < 4 * threads) rows /= 2;
  const int blocks = (maxSeq + rows - 1) / rows;
  struct Ctx {
    const Kernels* k;
    const AttentionProblem* p;
    int rows, blocks;
  } ctx{&k, &p, rows, blocks};
  const int64_t units = (int64_t)p.batch * p.heads * blocks;
  auto unit = [](void* c, int u) {
    const Ctx& x = *static_cast<Ctx*>(c);
    const int blk = u % x.blocks, bn = u / x.blocks;
    const int n = bn % x.p->heads, b = bn / x.p->heads;
    x.k->attention_rows(*x.p, b, n, blk * x.rows, (blk + 1) * x.rows);
  };
  // Serial when small: (Sq·Skv·(H+Hv) multiply-adds per head) under ~64K is not worth a hand-off.
  const double work = (double)p.batch * p.heads * maxSeq * (double)p.seqKV * (p.headSize + p.vHeadSize);
  if (threads == 1 || work < 65536) {
    for (int64_t u = 0; u < units; u++) unit(&ctx, (int)u);
    return;
  }
  pool().run((int)units, unit, &ctx);
}

void copy_bytes(void* dst, const void* src, int64_t n) {
  // Units of 64 KiB, about 512 KiB per task (unit 2048 against split's 16384 per task): a hand-off per
  // half-megabyte is noise, and a 12.6 MB output still spreads over 16 threads.
  constexpr int64_t UNIT = 65536;
  const int64_t units = (n + UNIT - 1) / UNIT;
  split(units, 2048, [&](int64_t b, int64_t e) {
    const int64_t i0 = b * UNIT, i1 = std::min(n, e * UNIT);
    std::memcpy(static_cast<char*>(dst) + i0, static_cast<const char*>(src) + i0, (size_t)(i1 - i0));
  });
}

bool all_finite(const Kernels& k, const float* x, int64_t n) {
  std::atomic<bool> finite{true};
  // Units of 4096 elements; a task that finds a non-finite value makes the others stop at their next unit.
  constexpr int64_t UNIT = 4096;
  split((n + UNIT - 1) / UNIT, UNIT, [&](int64_t b, int64_t e) {
    for (int64_t u = b; u < e && finite.load(std::memory_order_relaxed); u++) {
      const int64_t i0 = u * UNIT, i1 = std::min(n, i0 + UNIT);
      if (!k.all_finite(x + i0, i1 - i0)) finite.store(false, std::memory_order_relaxed);
    }
  });
  return finite.load();
}

}  // namespace mhf
