/**
 * Single-threaded float32 GEMM for row-major matrices:
 *
 *   C[M×N] = alpha · op(A)[M×K] · op(B)[K×N] + beta · C
 *
 * where op(X) is X or Xᵀ. Every matrix is addressed as (array, offset, leading dimension), BLAS style, so a
 * caller can run it on a block of rows (a worker thread's share of M) or on one matrix of a batch without
 * copying. Rows [i0, i1) of C are independent of the others: call with M = i1 − i0,
 * aOffset + i0·lda (or + i0 when transA), cOffset + i0·ldc. The packing buffers are module state, so
 * parallel calls need separate module instances (one per worker thread), never shared ones.
 *
 * Layout follows the GotoBLAS/BLIS scheme: B is packed into K_BLOCK×NR column panels and A into MR×K_BLOCK
 * row panels (alpha folded in), both zero padded to whole panels, so the micro-kernel reads both with unit
 * stride and never branches on edges. The micro-kernel keeps an MR×NR tile of C in local variables, which
 * V8 keeps in registers; the packed panels live in Float64Arrays so the inner loop has no float32→float64
 * conversions. Accumulation is therefore in float64 and C is rounded to float32 once per K block.
 */
import type { GemmProblem } from "../../ops/gemm-problem.js";

/** Rows of the register tile. */
const MR = 4;
/** Columns of the register tile. */
const NR = 4;
/** Depth of a packed block: MR·K_BLOCK + K_BLOCK·NR doubles stay in L1/L2 while the micro-kernel runs. */
const K_BLOCK = 256;
/** Rows of A packed at a time (an L2-sized block of A). */
const M_BLOCK = 64;
/** Columns of B packed at a time (an L3-sized block of B). */
const N_BLOCK = 2048;

let packedA = new Float64Array(M_BLOCK * K_BLOCK);
let packedB = new Float64Array(K_BLOCK * N_BLOCK);

/** Scratch tile for edge tiles that cover fewer than MR rows or NR columns. */
const edgeTile = new Float64Array(MR * NR);

export function gemm(p: GemmProblem): void {
  const { transA, transB, M, N, K, alpha, A, aOffset, lda, B, bOffset, ldb, beta, C, cOffset, ldc } = p;
  if (M <= 0 || N <= 0) return;
  scaleC(M, N, beta, C, cOffset, ldc);
  if (K <= 0 || alpha === 0) return;

  for (let jc = 0; jc < N; jc += N_BLOCK) {
    const nc = Math.min(N_BLOCK, N - jc);
    for (let pc = 0; pc < K; pc += K_BLOCK) {
      const kc = Math.min(K_BLOCK, K - pc);
      packB(transB, B, bOffset, ldb, pc, kc, jc, nc);
      for (let ic = 0; ic < M; ic += M_BLOCK) {
        const mc = Math.min(M_BLOCK, M - ic);
        packA(transA, A, aOffset, lda, ic, mc, pc, kc, alpha);
        macroKernel(mc, nc, kc, C, cOffset + ic * ldc + jc, ldc);
      }
    }
  }
}

/** C ← beta·C; beta = 0 overwrites, so NaN/garbage already in C does not leak through (BLAS convention). */
function scaleC(M: number, N: number, beta: number, C: Float32Array, cOffset: number, ldc: number): void {
  if (beta === 1) return;
  for (let i = 0; i < M; i++) {
    const row = cOffset + i * ldc;
    if (beta === 0) C.fill(0, row, row + N);
    else for (let j = row; j < row + N; j++) C[j] = C[j]! * beta;
  }
}

/** Packs op(B)[pc:pc+kc, jc:jc+nc] as ⌈nc/NR⌉ panels, each kc rows of NR contiguous values. */
function packB(
  transB: boolean,
  B: Float32Array,
  bOffset: number,
  ldb: number,
  pc: number,
  kc: number,
  jc: number,
  nc: number,
): void {
  const panels = Math.ceil(nc / NR);
  if (packedB.length < panels * NR * kc) packedB = new Float64Array(panels * NR * kc);
  const dst = packedB;
  for (let p = 0; p < panels; p++) {
    const j0 = jc + p * NR;
    const width = Math.min(NR, jc + nc - j0);
    let d = p * NR * kc;
    for (let k = 0; k < kc; k++, d += NR) {
      if (transB) {
        // op(B)(k, j) = B[j, k]
        let s = bOffset + j0 * ldb + pc + k;
        for (let j = 0; j < width; j++, s += ldb) dst[d + j] = B[s]!;
      } else {
        const s = bOffset + (pc + k) * ldb + j0;
        for (let j = 0; j < width; j++) dst[d + j] = B[s + j]!;
      }
      for (let j = width; j < NR; j++) dst[d + j] = 0;
    }
  }
}

/** Packs alpha·op(A)[ic:ic+mc, pc:pc+kc] as ⌈mc/MR⌉ panels, each kc columns of MR contiguous values. */
function packA(
  transA: boolean,
  A: Float32Array,
  aOffset: number,
  lda: number,
  ic: number,
  mc: number,
  pc: number,
  kc: number,
  alpha: number,
): void {
  const panels = Math.ceil(mc / MR);
  if (packedA.length < panels * MR * kc) packedA = new Float64Array(panels * MR * kc);
  const dst = packedA;
  for (let p = 0; p < panels; p++) {
    const i0 = ic + p * MR;
    const height = Math.min(MR, ic + mc - i0);
    const base = p * MR * kc;
    for (let i = 0; i < height; i++) {
      let d = base + i;
      if (transA) {
        // op(A)(i, k) = A[k, i]
        let s = aOffset + pc * lda + i0 + i;
        for (let k = 0; k < kc; k++, d += MR, s += lda) dst[d] = alpha * A[s]!;
      } else {
        let s = aOffset + (i0 + i) * lda + pc;
        for (let k = 0; k < kc; k++, d += MR, s++) dst[d] = alpha * A[s]!;
      }
    }
    for (let i = height; i < MR; i++) {
      let d = base + i;
      for (let k = 0; k < kc; k++, d += MR) dst[d] = 0;
    }
  }
}

/** Runs the micro-kernel over every MR×NR tile of an mc×nc block of C whose top-left is at cBase. */
function macroKernel(mc: number, nc: number, kc: number, C: Float32Array, cBase: number, ldc: number): void {
  for (let jr = 0; jr < nc; jr += NR) {
    const nr = Math.min(NR, nc - jr);
    const bPanel = (jr / NR) * NR * kc;
    for (let ir = 0; ir < mc; ir += MR) {
      const mr = Math.min(MR, mc - ir);
      const aPanel = (ir / MR) * MR * kc;
      const cTile = cBase + ir * ldc + jr;
      if (mr === MR && nr === NR) microKernel(kc, packedA, aPanel, packedB, bPanel, C, cTile, ldc);
      else edgeKernel(kc, aPanel, bPanel, C, cTile, ldc, mr, nr);
    }
  }
}

/** C tile (MR×NR at c) += packed A panel · packed B panel, over kc steps. 4×4 measured fastest in V8: 16
 * accumulators plus the operands nearly fit the 16 SSE registers, while 4×8 or 6×8 tiles spill. Re-measured
 * with literal strides (768³, Node 20, AMD EPYC): 4×8, 8×4, 3×8, 2×8, 4×12, 6×4, 4×6, 2×6, 3×6, 3×4, 4×3 and
 * 4×4 unrolled twice over k were all 0.6–1.05× of this kernel (~3.5–3.7 GFLOP/s), so it stays. */
function microKernel(
  kc: number,
  a: Float64Array,
  ai: number,
  b: Float64Array,
  bi: number,
  C: Float32Array,
  c: number,
  ldc: number,
): void {
  let c00 = 0,
    c01 = 0,
    c02 = 0,
    c03 = 0;
  let c10 = 0,
    c11 = 0,
    c12 = 0,
    c13 = 0;
  let c20 = 0,
    c21 = 0,
    c22 = 0,
    c23 = 0;
  let c30 = 0,
    c31 = 0,
    c32 = 0,
    c33 = 0;
  // Literal strides: V8 does not constant-fold the module-level MR/NR here, and that halves the speed.
  const aEnd = ai + kc * 4;
  for (; ai < aEnd; ai += 4, bi += 4) {
    const a0 = a[ai]!,
      a1 = a[ai + 1]!,
      a2 = a[ai + 2]!,
      a3 = a[ai + 3]!;
    let bv = b[bi]!;
    c00 += a0 * bv;
    c10 += a1 * bv;
    c20 += a2 * bv;
    c30 += a3 * bv;
    bv = b[bi + 1]!;
    c01 += a0 * bv;
    c11 += a1 * bv;
    c21 += a2 * bv;
    c31 += a3 * bv;
    bv = b[bi + 2]!;
    c02 += a0 * bv;
    c12 += a1 * bv;
    c22 += a2 * bv;
    c32 += a3 * bv;
    bv = b[bi + 3]!;
    c03 += a0 * bv;
    c13 += a1 * bv;
    c23 += a2 * bv;
    c33 += a3 * bv;
  }
  let r = c;
  C[r] += c00;
  C[r + 1] += c01;
  C[r + 2] += c02;
  C[r + 3] += c03;
  r += ldc;
  C[r] += c10;
  C[r + 1] += c11;
  C[r + 2] += c12;
  C[r + 3] += c13;
  r += ldc;
  C[r] += c20;
  C[r + 1] += c21;
  C[r + 2] += c22;
  C[r + 3] += c23;
  r += ldc;
  C[r] += c30;
  C[r + 1] += c31;
  C[r + 2] += c32;
  C[r + 3] += c33;
}

/** A partial tile: the plain triple loop into a scratch tile, then only the valid mr×nr part is added. */
function edgeKernel(
  kc: number,
  aPanel: number,
  bPanel: number,
  C: Float32Array,
  c: number,
  ldc: number,
  mr: number,
  nr: number,
): void {
  const a = packedA;
  const b = packedB;
  const t = edgeTile;
  t.fill(0);
  for (let k = 0; k < kc; k++) {
    const ak = aPanel + k * MR;
    const bk = bPanel + k * NR;
    for (let i = 0; i < mr; i++) {
      const av = a[ak + i]!;
      for (let j = 0; j < nr; j++) t[i * NR + j] += av * b[bk + j]!;
    }
  }
  for (let i = 0; i < mr; i++) for (let j = 0; j < nr; j++) C[c + i * ldc + j] += t[i * NR + j]!;
}
