// The kernel table: every ISA build (vec.h) fills one, and dispatch.cc hands out the best the CPU runs.
// Drivers (gemm.cc, attention.cc, the addon) only ever call kernels through a table.
#pragma once
#include <cstdint>

namespace mhf {

enum Activation : int { ACT_NONE = 0, ACT_GELU_ERF = 1, ACT_GELU_TANH = 2, ACT_RELU = 3, ACT_SIGMOID = 4 };

// Epilogue of a GEMM, applied to each tile once its sum over all of K is complete:
//   C = act(C + bias[col]) + residual[row·ldr + col]
struct Epilogue {
  const float* bias;      // [N] or null
  int act;                // Activation
  const float* residual;  // or null
  int64_t ldr;
};

// Where one tensor's (batch, head, seq) rows live; the feature axis is contiguous (element units).
struct Strided {
  int64_t offset, batch, head, seq;
};

// One attention call (see attention.cc for the semantics, which follow src/backends/cpu/attention-kernel.ts).
struct AttentionProblem {
  int batch, heads, kvHeads, seqQ, seqKV, headSize, vHeadSize;
  float scale;
  const float *q, *k, *v;
  float* out;
  Strided ql, kl, vl, ol;
  const int32_t* keyLengths;    // [batch] or null
  const int32_t* queryLengths;  // [batch] or null: rows >= length are zeros
  const int32_t* cuSeqlens;     // [batch + 1] or null: batch b is rows cu[b]..cu[b+1] of every tensor
  bool causal;
  int causalOffset;  // key j allowed iff j <= i + causalOffset
  const float* bias;  // additive, [b·biasBatch + n·biasHead + i·biasRow + j] or null
  int64_t biasBatch, biasHead, biasRow;
};

struct Kernels {
  const char* name;
  int mr, nr;  // GEMM register tile
  // B (K×N, or N×K when trans) columns [n0, n0+nc) × rows [k0, k0+kc) → panels of nr columns, kc·nr each,
  // zero padded to whole panels.
  void (*pack_b)(const float* b, int64_t ldb, bool trans, int k0, int kc, int n0, int nc, float* dst);
  // C tile (mr×nr) = (accumulate ? C : 0) + A·Bpanel, A read in place (row i of the tile at a + i·lda, m ≥ 1
  // rows valid); only rows < m and cols < n are written.
  void (*micro)(int kc, const float* a, int64_t lda, const float* b, float* c, int64_t ldc, int m, int n,
                bool accumulate);
  // The epilogue over a rows × cols block of C whose top-left element is (row0, col0) of the whole C.
  void (*epilogue)(float* c, int64_t ldc, int rows, int cols, int64_t row0, int col0, const Epilogue& e);

  void (*layer_norm)(const float* x, float* y, int64_t rows, int d, float eps, const float* gamma,
                     const float* beta, float* mean, float* inv_std);
  // sum = x + skip[row % skipRows] (+ bias); y = LayerNorm(sum); sumOut (optional) receives sum.
  void (*skip_layer_norm)(const float* x, const float* skip, int64_t skip_rows, const float* bias,
                          const float* gamma, const float* beta, float* y, float* sum_out, int64_t rows, int d,
                          float eps, int64_t row0);
  void (*softmax)(const float* x, float* y, int64_t rows, int d);
  // y = act(x + bias[i % bias_len]) (bias may be null).
  void (*activation)(const float* x, float* y, int64_t n, const float* bias, int64_t bias_len, int64_t i0,
                     int act);
  // y = a + b[i % b_len]
  void (*add)(const float* a, const float* b, float* y, int64_t n, int64_t b_len, int64_t i0);
  // Query rows [r0, r1) of (batch b, head n).
  void (*attention_rows)(const AttentionProblem& p, int b, int n, int r0, int r1);
  // Whether x[0, n) holds no NaN or ±Inf (exponent bits all ones).
  bool (*all_finite)(const float* x, int64_t n);
  // Register-only FMAs (no memory traffic) for `iters` steps; returns the flops done. The benchmark times it
  // beside the GEMM to measure the peak this (shared, possibly throttled) machine gives right now.
  double (*fma_probe)(int64_t iters);
};

namespace avx512 { const Kernels* kernels(); }
namespace avx2 { const Kernels* kernels(); }
namespace portable { const Kernels* kernels(); }

}  // namespace mhf
