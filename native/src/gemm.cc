// GotoBLAS/BLIS blocking over the prepacked B: a task is a block of rows × a block of columns; for each K block
// and each row tile (its MR×KC slice of A, read in place, stays in L1) it runs the micro-kernel over the task's
// B micro-panels (streamed from L2, prefetched by the micro-kernel). A is not packed (see micro in
// gemm_kernel.cc). Measured on the Zen 5 box
// (CPU time, single thread): this order with prefetch 0.85-0.90 of the FMA probe, B-panel-in-L1 order without
// prefetch 0.83-0.86; KC 128 0.81, KC 384 no better than 256. Tasks are small enough that the pool balances
// them dynamically across the threads.
#include "gemm.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <sys/mman.h>
#include <vector>

#include "threadpool.h"

namespace mhf {

// K rows per packed block: A slice (MR×KC) + B micro-panel (KC×NR) = 8 KB + 32 KB, Zen 5's 48 KB L1 (AVX-512).
// On the Zen 4 dev box (32 KB L1) KC = 128 still ran slower: 0.957 at M = 128, 0.935 at M = 1024
// (`bench/addon-ab.ts`, 2026-11-29) — the B panel streams from L2 either way (see gemm_task).
static constexpr int KC = 256;
// Rows of A per task (a multiple of every MR: 8, 6, 4): an MC×KC block of A is 96 KB, well inside L2.
static constexpr int MC = 96;

PackedB::PackedB(const Kernels* isa, int K, int N) : isa(isa), K(K), N(N), kc(KC) {
  const int64_t npad = (int64_t)(N + isa->nr - 1) / isa->nr * isa->nr;
  block_stride = npad * KC;
  const int blocks = (K + KC - 1) / KC;
  size_t bytes = (size_t)(blocks > 0 ? blocks : 1) * block_stride * sizeof(float);
  bytes = (bytes + 63) / 64 * 64;
  // Panels of 2 MiB and more start on a 2 MiB boundary and ask for transparent huge pages (THP is in
  // `madvise` mode on the dev box, as on most distributions): a GEMM streams its whole packed B once per
  // row block, and with 4 KiB pages a 9.4 MB FFN weight is 2300 pages, past the L2 TLB's reach alongside the
  // activations. The allocation is rounded up to whole huge pages (aligned_alloc wants a multiple of the
  // alignment; the unused tail is never touched, so it costs address space, not memory), but only the whole huge
  // pages of the panels are advised (a 768×768 weight's 2.4 MB: one huge page, the tail on small ones). Measured on the 2-vCPU EPYC dev box, 11-29 10:45–11:12 UTC, against the
  // 64-byte-aligned build: `node --import tsx bench/addon-ab.ts --b <this build> --layers 4 --m 128|1024` (the
  // GEMM sequence alone) B/A 1.043–1.057 and 1.024 at M = 128, 1.007–1.016 at M = 1024; whole 4-layer model,
  // `bench/compare-checkouts.ts … --pairs 30` (median per-pair ratio) 0.961 / 0.991 / 0.993 at [1,128], 0.998 /
  // 1.004 at a quarter-padded [8,128]: about 1% at batch 1, nothing at batch 8. Where THP is off it is a no-op.
  constexpr size_t HUGE_PAGE = size_t{2} << 20;
  if (bytes >= HUGE_PAGE) {
    data = static_cast<float*>(std::aligned_alloc(HUGE_PAGE, (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE));
#ifdef MADV_HUGEPAGE
    // Linux only (macOS has no transparent huge pages): elsewhere the aligned allocation alone.
    if (data) madvise(data, bytes / HUGE_PAGE * HUGE_PAGE, MADV_HUGEPAGE);
#endif
  } else {
    data = static_cast<float*>(std::aligned_alloc(64, bytes > 0 ? bytes : 64));
  }
  if (!data) throw std::bad_alloc();
}

PackedB::~PackedB() { std::free(data); }

int64_t PackedB::bytes() const {
  const int blocks = (K + KC - 1) / KC;
  return (int64_t)(blocks > 0 ? blocks : 1) * block_stride * (int64_t)sizeof(float);
}

namespace {

struct PackJob {
  const float* b;
  int64_t ldb;
  bool trans;
  PackedB* out;
  int panels_per_task, panel_tasks;
};

void pack_task(void* ctx, int t) {
  const PackJob& j = *static_cast<PackJob*>(ctx);
  const int kb = t / j.panel_tasks;
  const int nr = j.out->isa->nr;
  const int n0 = (t % j.panel_tasks) * j.panels_per_task * nr;
  if (n0 >= j.out->N) return;
  const int nc = j.out->N - n0 < j.panels_per_task * nr ? j.out->N - n0 : j.panels_per_task * nr;
  j.out->isa->pack_b(j.b, j.ldb, j.trans, kb * j.out->kc, j.out->rows(kb), n0, nc,
                     const_cast<float*>(j.out->panels(kb, n0)));
}

struct GemmJob {
  int M;
  const float* a;
  int64_t lda;
  const PackedB* b;
  float* c;
  int64_t ldc;
  const Epilogue* e;
  int mc, nc;         // rows and columns per task
  int n_tasks_cols;   // column blocks
};

void gemm_task(void* ctx, int t) {
  const GemmJob& j = *static_cast<GemmJob*>(ctx);
  const Kernels& k = *j.b->isa;
  const int MR = k.mr, NR = k.nr;
  const int i0 = (t / j.n_tasks_cols) * j.mc;
  const int n0 = (t % j.n_tasks_cols) * j.nc;
  const int mc = j.M - i0 < j.mc ? j.M - i0 : j.mc;
  const int nc = j.b->N - n0 < j.nc ? j.b->N - n0 : j.nc;
  if (mc <= 0 || nc <= 0) return;
  const int K = j.b->K;
  const int blocks = (K + j.b->kc - 1) / j.b->kc;
  for (int kb = 0; kb < blocks; kb++) {
    const int kc = j.b->rows(kb);
    const float* a_block = j.a + (int64_t)i0 * j.lda + (int64_t)kb * j.b->kc;
    const bool last = kb == blocks - 1;
    for (int ir = 0; ir < mc; ir += MR) {
      const int m = mc - ir < MR ? mc - ir : MR;
      for (int jr = 0; jr < nc; jr += NR) {
        const float* bp = j.b->panels(kb, n0 + jr);
        const int n = nc - jr < NR ? nc - jr : NR;
        float* ct = j.c + (int64_t)(i0 + ir) * j.ldc + n0 + jr;
        k.micro(kc, a_block + (int64_t)ir * j.lda, j.lda, bp, ct, j.ldc, m, n, kb > 0);
        if (last && (j.e->bias || j.e->act || j.e->residual))
          k.epilogue(ct, j.ldc, m, n, i0 + ir, n0 + jr, *j.e);
      }
    }
  }
}

}  // namespace

PackedB* pack_b(const Kernels* isa, const float* b, int64_t ldb, bool trans, int K, int N) {
  PackedB* p = new PackedB(isa, K, N);
  if (K <= 0 || N <= 0) return p;
  const int blocks = (K + KC - 1) / KC;
  const int panels = (N + isa->nr - 1) / isa->nr;
  PackJob job{b, ldb, trans, p, 8, (panels + 7) / 8};
  pool().run(blocks * job.panel_tasks, pack_task, &job);
  return p;
}

void gemm(int M, const float* a, int64_t lda, const PackedB& b, float* c, int64_t ldc, const Epilogue& e) {
  const int N = b.N;
  if (M <= 0 || N <= 0) return;
  if (b.K <= 0) {
    for (int i = 0; i < M; i++) std::memset(c + (int64_t)i * ldc, 0, sizeof(float) * N);
    if (e.bias || e.act || e.residual) b.isa->epilogue(c, ldc, M, N, 0, 0, e);
    return;
  }
  ThreadPool& tp = pool();
  const int threads = tp.threads();
  const int NR = b.isa->nr;
  // Columns per task: 256 (8 AVX-512 panels) unless that leaves too few tasks to balance the threads.
  int nc = 8 * NR;
  const int mtasks = (M + MC - 1) / MC;
  // Row blocks of equal size (128 rows: 2 × 64, not 96 + 32), a multiple of the tile.
  const int MR = b.isa->mr;
  int mc = ((M + mtasks - 1) / mtasks + MR - 1) / MR * MR;
  while (nc > NR && mtasks * ((N + nc - 1) / nc) < 4 * threads) nc -= NR;
  const int ntasks_cols = (N + nc - 1) / nc;
  // Still too few (tall, narrow C): smaller row blocks, a multiple of the tile.
  while (mc > MR && ((M + mc - 1) / mc) * ntasks_cols < 2 * threads) mc -= MR;
  GemmJob job{M, a, lda, &b, c, ldc, &e, mc, nc, ntasks_cols};
  const int tasks = ((M + mc - 1) / mc) * ntasks_cols;
  if (threads == 1)
    for (int t = 0; t < tasks; t++) gemm_task(&job, t);
  else
    tp.run(tasks, gemm_task, &job);
}

}  // namespace mhf
