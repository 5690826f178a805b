// SGEMM C = A·B (+ epilogue) against a B packed once (weights): blocking and threading over the micro-kernel.
#pragma once
#include <cstdint>

#include "kernels.h"

namespace mhf {

// op(B) (K×N) packed into the micro-kernel's panels, K blocks of KC rows, for the ISA that packed it.
struct PackedB {
  const Kernels* isa;
  int K, N, kc;
  int64_t block_stride;  // floats per K block: kc × N rounded up to whole panels
  float* data;
  PackedB(const Kernels* isa, int K, int N);
  ~PackedB();
  PackedB(const PackedB&) = delete;
  PackedB& operator=(const PackedB&) = delete;
  // Panels of K block kb, from column n0 (a multiple of nr).
  const float* panels(int kb, int n0) const { return data + kb * block_stride + (int64_t)n0 * rows(kb); }
  int rows(int kb) const { return K - kb * kc < kc ? K - kb * kc : kc; }
  int64_t bytes() const;
};

// Packs op(B): B is K×N row-major with leading dimension ldb, or N×K when trans.
PackedB* pack_b(const Kernels* isa, const float* b, int64_t ldb, bool trans, int K, int N);

// C[M×N] (leading dimension ldc) = A[M×K] (lda) · op(B), then the epilogue. C is overwritten (whatever it held,
// NaN included, is ignored); K = 0 gives C = epilogue(0).
void gemm(int M, const float* a, int64_t lda, const PackedB& b, float* c, int64_t ldc, const Epilogue& e);

}  // namespace mhf
