/**
 * The one description of a float32 GEMM that every layer shares: the MatMul/Gemm/Conv/Einsum contracts
 * build these, the reference runs them with `referenceGemm`, a backend with its fast kernel.
 */

/** C[M×N] = alpha·op(A)·op(B) + beta·C on row-major float32 matrices at the given offsets and strides. */
export interface GemmProblem {
  transA: boolean;
  transB: boolean;
  M: number;
  N: number;
  K: number;
  alpha: number;
  A: Float32Array;
  aOffset: number;
  lda: number;
  B: Float32Array;
  bOffset: number;
  ldb: number;
  beta: number;
  C: Float32Array;
  cOffset: number;
  ldc: number;
  /**
   * A hint for fused kernels: C holds this [N] row repeated on every row and beta is 1 (Gemm's bias), so a
   * kernel may add it in its epilogue and overwrite C instead of reading it. C is filled all the same, so
   * a kernel that ignores the hint (the reference) computes the same result.
   */
  rowBias?: Float32Array;
}

/**
 * The oracle: a plain triple loop accumulating in float64, rounded once to float32. beta = 0 ignores C's old
 * contents (as BLAS does), so a C full of NaN from a reused buffer cannot leak into the result.
 */
export function referenceGemm(p: GemmProblem): void {
  const { M, N, K, A, B, C, lda, ldb, ldc, alpha, beta } = p;
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let acc = 0;
      for (let k = 0; k < K; k++) {
        const a = A[p.aOffset + (p.transA ? k * lda + i : i * lda + k)]!;
        const b = B[p.bOffset + (p.transB ? j * ldb + k : k * ldb + j)]!;
        acc += a * b;
      }
      const at = p.cOffset + i * ldc + j;
      C[at] = beta === 0 ? alpha * acc : alpha * acc + beta * C[at]!;
    }
  }
}
