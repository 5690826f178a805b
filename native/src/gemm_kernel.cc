// GEMM building blocks for one ISA (compiled per ISA, see vec.h): packing B and the register-tile micro-kernel.
// The tile is MR rows × NV vectors: every k step loads NV vectors of the packed B panel, broadcasts MR values
// of A (one per row, read in place) and issues MR·NV independent FMAs into accumulators that never leave the registers.
// AVX-512: 8×32 (16 accumulators of the 32 zmm registers, 2 loads + 8 broadcasts per 16 FMAs); AVX2: 6×16
// (12 of 16 ymm); portable SSE: 4×8.
#include "kernels.h"
#include "vec.h"

namespace mhf {
namespace MHF_NS {

#if defined(MHF_ISA_AVX512)
constexpr int MR = 8, NV = 2;
#elif defined(MHF_ISA_AVX2)
constexpr int MR = 6, NV = 2;
#else
constexpr int MR = 4, NV = 2;
#endif
constexpr int NR = NV * VL;
constexpr int PF = 8;

static void pack_b(const float* b, int64_t ldb, bool trans, int k0, int kc, int n0, int nc, float* dst) {
  for (int p = 0; p < nc; p += NR) {
    const int w = nc - p < NR ? nc - p : NR;
    for (int k = 0; k < kc; k++, dst += NR) {
      if (trans) {
        const float* s = b + (int64_t)(n0 + p) * ldb + (k0 + k);
        for (int j = 0; j < w; j++) dst[j] = s[(int64_t)j * ldb];
      } else {
        const float* s = b + (int64_t)(k0 + k) * ldb + (n0 + p);
        for (int j = 0; j < w; j++) dst[j] = s[j];
      }
      for (int j = w; j < NR; j++) dst[j] = 0;
    }
  }
}

// The tile's sums over kc steps, reading A where it lies (row i at a + i·lda; rows past m read the last valid
// row, their sums discarded) rather than from a packed panel: each k step broadcasts one float of each of the MR
// rows either way, and skipping the pack saves a copy of A per column block of C — 1.01-1.06x the packed-A
// kernel on every BERT shape, 1 and 2 threads (an interleaved A/B of both kernels in one process on the Zen 5
// box, 2026-11-29; the packed-A kernel is gone, so bench/native.ts now times this one against onnxruntime).
static void micro(int kc, const float* __restrict a, int64_t lda, const float* __restrict b, float* c,
                  int64_t ldc, int m, int n, bool accumulate) {
  vf s[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++) s[i][j] = vf{};
  const float* rows[MR];
  for (int i = 0; i < MR; i++) rows[i] = a + (int64_t)(i < m ? i : m - 1) * lda;
  for (int k = 0; k < kc; k++, b += NR) {
    // Software prefetch PF steps ahead: the B panel streams from L2 (the hardware prefetcher alone leaves the
    // FMAs waiting on it about 10% of the time).
    __builtin_prefetch(b + PF * NR);
    __builtin_prefetch(b + PF * NR + 16);
    // The same k row of the next micro-panel, into L2: on a task's first row tile the panels stream from memory
    // (a model's weights are never cache-resident). +1-6% on the BERT GEMM sequence with cold weights, 1 and 2
    // threads (`bench/addon-ab.ts`, 2026-11-29, the Zen 5 box).
    __builtin_prefetch(b + (int64_t)kc * NR, 0, 1);
    __builtin_prefetch(b + (int64_t)kc * NR + 16, 0, 1);
    vf bv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++) bv[j] = load(b + j * VL);
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
      const vf av = splat(rows[i][k]);
#pragma GCC unroll 4
      for (int j = 0; j < NV; j++) s[i][j] += av * bv[j];
    }
  }
  if (m == MR && n == NR) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
      for (int j = 0; j < NV; j++) {
        float* p = c + i * ldc + j * VL;
        store(p, accumulate ? load(p) + s[i][j] : s[i][j]);
      }
    return;
  }
  for (int i = 0; i < m; i++)
    for (int j = 0; j < NV; j++) {
      const int w = n - j * VL;
      if (w <= 0) break;
      float* p = c + i * ldc + j * VL;
      if (w >= VL)
        store(p, accumulate ? load(p) + s[i][j] : s[i][j]);
      else
        store_part(p, accumulate ? load_part(p, w) + s[i][j] : s[i][j], w);
    }
}

static inline vf apply_act(vf x, int act) {
  if (act == ACT_GELU_ERF) return vgelu_erf(x);
  if (act == ACT_GELU_TANH) return vgelu_tanh(x);
  if (act == ACT_RELU) return vrelu(x);
  if (act == ACT_SIGMOID) return vsigmoid(x);
  return x;
}

static void epilogue(float* c, int64_t ldc, int rows, int cols, int64_t row0, int col0, const Epilogue& e) {
  for (int i = 0; i < rows; i++) {
    float* row = c + i * ldc;
    const float* res = e.residual ? e.residual + (row0 + i) * e.ldr + col0 : nullptr;
    const float* bias = e.bias ? e.bias + col0 : nullptr;
    int j = 0;
    for (; j + VL <= cols; j += VL) {
      vf x = load(row + j);
      if (bias) x += load(bias + j);
      x = apply_act(x, e.act);
      if (res) x += load(res + j);
      store(row + j, x);
    }
    if (j < cols) {
      const int w = cols - j;
      vf x = load_part(row + j, w);
      if (bias) x += load_part(bias + j, w);
      x = apply_act(x, e.act);
      if (res) x += load_part(res + j, w);
      store_part(row + j, x, w);
    }
  }
}

// Defined in elementwise.cc and attention_kernel.cc of the same ISA build.
void layer_norm(const float*, float*, int64_t, int, float, const float*, const float*, float*, float*);
void skip_layer_norm(const float*, const float*, int64_t, const float*, const float*, const float*, float*,
                     float*, int64_t, int, float, int64_t);
void softmax(const float*, float*, int64_t, int);
void activation(const float*, float*, int64_t, const float*, int64_t, int64_t, int);
void add(const float*, const float*, float*, int64_t, int64_t, int64_t);
void attention_rows(const AttentionProblem&, int, int, int, int);
bool all_finite(const float*, int64_t);

// 2·MR·NV independent FMA chains: more than latency × pipes, so the probe is throughput-bound like the kernel.
static double fma_probe(int64_t iters) {
  vf s[MR][NV];
  const vf x = splat(0.5f), y = splat(0.25f);
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NV; j++) s[i][j] = splat((float)(i + j));
  for (int64_t k = 0; k < iters; k++)
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
      for (int j = 0; j < NV; j++) s[i][j] = s[i][j] * x + y;
  volatile float sink = 0;
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NV; j++) sink = sink + s[i][j][0];
  return 2.0 * MR * NV * VL * (double)iters;
}

#define MHF_STR2(x) #x
#define MHF_STR(x) MHF_STR2(x)
const Kernels* kernels() {
  static const Kernels k = {MHF_STR(MHF_NS), MR, NR, pack_b, micro, epilogue, layer_norm,
                            skip_layer_norm, softmax, activation, add, attention_rows, all_finite,
                            fma_probe};
  return &k;
}

}  // namespace MHF_NS
}  // namespace mhf
