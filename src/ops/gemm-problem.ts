/**
 * The one description of a float32 GEMM that every layer shares: the MatMul/Gemm/Conv/Einsum contracts
 * build these, the reference runs them with `referenceGemm`, a backend with its fast kernel.
 */
import { geluErfFloat32, geluTanh } from "./elementwise-util.js";

/**
 * An activation applied to every element of C: "gelu" is GELU's erf form as geluErfFloat32 rounds it,
 * "gelu-tanh" its tanh approximation (com.microsoft FastGelu) as geluTanh computes it, rounded to float32.
 */
export type GemmActivation = "gelu" | "gelu-tanh";

const ACTIVATIONS: Record<GemmActivation, (x: number) => number> = {
  gelu: geluErfFloat32,
  "gelu-tanh": geluTanh,
};

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
   * Gemm's bias row (beta is 1): beta·C stands for this [N] row on every row, and C is NOT filled with it —
   * copying the bias into every row of C cost more than the epilogue that adds it (~1 ms a BERT-base
   * [1,128] run). A kernel adds it in its epilogue and overwrites C, or calls `fillRowBias` first.
   */
  rowBias?: Float32Array;
  /**
   * C = act(alpha·op(A)·op(B) + beta·C) (mhafuse.FusedGemm): every kernel that runs the problem applies it,
   * in its epilogue or by `applyGemmActivation` after the GEMM.
   */
  activation?: GemmActivation;
  /**
   * C = act(alpha·op(A)·op(B) + beta·C) + R (mhafuse.FusedGemm's residual input): R is M×N row-major, element
   * [i, j] at i·N + j, added last in float32 — what an Add of the GEMM's result computes.
   */
  residual?: Float32Array;
}

/**
 * Applies a problem's epilogue after the GEMM — its activation, then its residual — to its C block in place
 * (kernels without them in their own epilogue).
 */
export function applyGemmActivation(p: GemmProblem): void {
  const { activation, residual } = p;
  if (!activation && !residual) return;
  const act = activation ? ACTIVATIONS[activation] : undefined;
  const { C, M, N, ldc, cOffset } = p;
  for (let i = 0; i < M; i++) {
    const row = cOffset + i * ldc;
    if (act) for (let j = row; j < row + N; j++) C[j] = act(C[j]!);
    if (residual) for (let j = 0; j < N; j++) C[row + j] = C[row + j]! + residual[i * N + j]!;
  }
}

/** Writes a problem's bias row into every row of C (for kernels that read beta·C instead of the hint). */
export function fillRowBias(p: GemmProblem): void {
  const bias = p.rowBias;
  if (!bias) return;
  for (let i = 0; i < p.M; i++) p.C.set(bias.subarray(0, p.N), p.cOffset + i * p.ldc);
}

/**
 * The oracle: a plain triple loop accumulating in float64, rounded once to float32. beta = 0 ignores C's old
 * contents (as BLAS does), so a C full of NaN from a reused buffer cannot leak into the result.
 */
export function referenceGemm(p: GemmProblem): void {
  fillRowBias(p);
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
  applyGemmActivation(p);
}
