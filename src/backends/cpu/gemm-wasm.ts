/**
 * Float32 GEMM on a WebAssembly SIMD (f32x4) micro-kernel, with `gemm`'s exact arguments and semantics.
 *
 * The kernel (wasm/gemm.ts, AssemblyScript, embedded as base64 by the build) cannot read JS arrays, so each
 * thread owns one instance with its own memory and a call runs in blocks of columns (B block) × rows (A block):
 * the block of B is copied in raw (row by row, memcpy speed) and packed into NR-wide column panels once, then for
 * every block of rows the raw A rows are copied in, C starts as zeros (beta = 0: whatever C held — NaN
 * included — is ignored) or as beta·C, the kernel adds alpha·A·B, and the rows are copied back into C. Copies
 * are O(M·K + K·N + M·N) against the O(M·N·K) product. B operands the engine marked immutable (weights) are
 * packed once and the packed panels cached, keyed by the array and the addressing, in a SharedArrayBuffer so
 * that every worker thread copies them in instead of re-packing.
 *
 * `gemmFast` is what the parallel GEMM calls: this kernel when WebAssembly SIMD is available and the problem is
 * not tiny, else the plain-JS `gemm` (gemm.ts), which stays the fallback.
 */
import type { GemmProblem } from "../../ops/gemm-problem.js";
import { defaultGemmKernel } from "./defaults.js";
import { gemm } from "./gemm.js";
import { GEMM_WASM_BASE64 } from "./wasm/gemm-wasm.generated.js";
import { copyRows, heap, instantiateKernel, type WasmMemory } from "./wasm/module.js";

/** Register tile of the kernel (wasm/gemm.ts): C rows are padded to MR, columns to NR. */
const MR = 4;
const NR = 8;
/** Depth of the kernel's packed A blocks (wasm/gemm.ts KC). */
const KC = 256;
/** Floats of packed B per column block: bounds the module's memory (the raw copy doubles it). */
const B_BLOCK_FLOATS = 1 << 22;
/** Floats of raw A per row block. */
const A_BLOCK_FLOATS = 1 << 18;
/** Below this many multiply-adds (M·N·K) the JS kernel wins: no copies, no call overhead. */
export const GEMM_WASM_MIN_MACS = 4096;
/** Byte address of the first buffer in the module's memory (the module has no data of its own). */
const BASE = 64;

interface Kernel {
  memory: WasmMemory;
  packB(transB: number, K: number, nc: number, b: number, ldb: number, dst: number): void;
  gemmBlock(
    transA: number,
    mc: number,
    nc: number,
    K: number,
    alpha: number,
    a: number,
    lda: number,
    bPack: number,
    c: number,
    ldc: number,
    aPack: number,
  ): void;
  scale(x: number, n: number, s: number): void;
}

/** Counters for tests and benchmarks (monotonic, per thread). */
export const gemmWasmStats = {
  /** Calls that ran the wasm kernel. */
  calls: 0,
  /** Packings of an immutable B cached for reuse (cache misses). */
  packedBCopies: 0,
};

let kernel: Kernel | null | undefined;

/** This thread's kernel instance, or null when WebAssembly SIMD is unavailable. */
function getKernel(): Kernel | null {
  if (kernel !== undefined) return kernel;
  // Whether to use it is each call's choice (gemmFast's allowWasm; MHAFUSE_NO_WASM sets the default).
  kernel = instantiateKernel<Kernel>(GEMM_WASM_BASE64, false);
  return kernel;
}

/** Whether this thread can run the WebAssembly SIMD kernel. */
export function wasmGemmAvailable(): boolean {
  return getKernel() !== null;
}

/** Packed panels of immutable B operands: array → "transB,bOffset,ldb,K,N" → panels (SharedArrayBuffer). */
const packedCache = new WeakMap<Float32Array, Map<string, Float32Array>>();

/**
 * The packed panels of all of op(B) (K×N; panel p holds columns [p·NR, p·NR + NR) × all K rows, NR·K floats),
 * packed once and cached in shared memory for every thread. The caller must only pass arrays the engine marked
 * immutable (isImmutable): nothing derived from an array that may be rewritten is ever cached. Returns
 * undefined when the wasm kernel is unavailable.
 */
export function cachedPackedB(
  transB: boolean,
  K: number,
  N: number,
  B: Float32Array,
  bOffset: number,
  ldb: number,
): Float32Array | undefined {
  const k = getKernel();
  if (!k || K <= 0 || N <= 0) return undefined;
  let byKey = packedCache.get(B);
  if (!byKey) packedCache.set(B, (byKey = new Map()));
  const key = `${+transB},${bOffset},${ldb},${K},${N}`;
  let packed = byKey.get(key);
  if (!packed) {
    const [rows, cols] = transB ? [N, K] : [K, N];
    const panelFloats = Math.ceil(N / NR) * NR * K;
    const raw = BASE / 4 + panelFloats;
    const mem = heap(k.memory, (raw + rows * cols) * 4);
    gemmWasmStats.packedBCopies++;
    copyRows(B, bOffset, ldb, rows, cols, mem, raw);
    k.packB(+transB, K, N, raw * 4, cols, BASE);
    packed = new Float32Array(new SharedArrayBuffer(panelFloats * 4));
    packed.set(mem.subarray(BASE / 4, BASE / 4 + panelFloats));
    byKey.set(key, packed);
  }
  return packed;
}

/**
 * `gemm` on the WebAssembly SIMD kernel: C[M×N] = alpha·op(A)·op(B) + beta·C, same arguments. Falls back to the
 * JS kernel when WebAssembly SIMD is unavailable. `packedB`, when given, holds the panels of op(B) for columns
 * [0, N) and all K rows as `cachedPackedB` makes them (a slice of it starting at a multiple of NR columns
 * works too), and B is not read.
 */
export function gemmWasm(p: GemmProblem, packedB?: Float32Array): void {
  const { transA, transB, M, N, K, alpha, A, aOffset, lda, B, bOffset, ldb, beta, C, cOffset, ldc } = p;
  const k = getKernel();
  if (!k || M <= 0 || N <= 0 || K <= 0 || alpha === 0) {
    if (packedB && K > 0 && alpha !== 0) throw new Error("gemmWasm: a packed B needs the wasm kernel");
    gemm(p);
    return;
  }
  gemmWasmStats.calls++;
  const cached = packedB;

  // Column blocks: a whole number of panels, at most B_BLOCK_FLOATS packed (all of N when B is cached).
  const nb = cached ? N : Math.min(N, Math.max(NR, Math.floor(B_BLOCK_FLOATS / K / NR) * NR));
  // Row blocks: a whole number of MR tiles, at most A_BLOCK_FLOATS raw.
  const mb = Math.min(M, Math.max(MR, Math.floor(A_BLOCK_FLOATS / K / MR) * MR));
  const nbPad = Math.ceil(nb / NR) * NR;
  const mbPad = Math.ceil(mb / MR) * MR;
  // Layout (floats): packed B | raw B block | raw A block | C block | packed A.
  const bPack = BASE / 4;
  const bRaw = bPack + nbPad * K;
  const aRaw = bRaw + (cached ? 0 : nb * K);
  const cBlk = aRaw + mb * K;
  const aPack = cBlk + mbPad * nbPad;
  const mem = heap(k.memory, (aPack + mbPad * Math.min(K, KC)) * 4);
  if (cached) mem.set(cached.subarray(0, nbPad * K), bPack);

  for (let jc = 0; jc < N; jc += nb) {
    const nc = Math.min(nb, N - jc);
    if (!cached) {
      // op(B)[:, jc:jc+nc]: rows jc.. of B when transposed, else columns jc.. of every row.
      if (transB) copyRows(B, bOffset + jc * ldb, ldb, nc, K, mem, bRaw);
      else copyRows(B, bOffset + jc, ldb, K, nc, mem, bRaw);
      k.packB(+transB, K, nc, bRaw * 4, transB ? K : nc, bPack * 4);
    }
    const bPanels = bPack + (cached ? jc * K : 0);
    for (let ic = 0; ic < M; ic += mb) {
      const mc = Math.min(mb, M - ic);
      if (transA) copyRows(A, aOffset + ic, lda, K, mc, mem, aRaw);
      else copyRows(A, aOffset + ic * lda, lda, mc, K, mem, aRaw);
      const c0 = cOffset + ic * ldc + jc;
      if (beta === 0) {
        mem.fill(0, cBlk, cBlk + mbPad * nbPad);
      } else {
        for (let i = 0; i < mc; i++) {
          const s = c0 + i * ldc;
          mem.set(C.subarray(s, s + nc), cBlk + i * nbPad);
        }
        if (beta !== 1) k.scale(cBlk * 4, mc * nbPad, beta);
      }
      k.gemmBlock(
        +transA,
        mc,
        nc,
        K,
        alpha,
        aRaw * 4,
        transA ? mc : K,
        bPanels * 4,
        cBlk * 4,
        nbPad,
        aPack * 4,
      );
      // The module's memory never grows inside a call, so the view stays valid.
      for (let i = 0; i < mc; i++) {
        const s = cBlk + i * nbPad;
        C.set(mem.subarray(s, s + nc), c0 + i * ldc);
      }
    }
  }
}

/** `gemm` on the fastest kernel available for the problem: the wasm kernel unless it is tiny or unavailable. */
export function gemmFast(
  p: GemmProblem,
  packedB?: Float32Array,
  /** false: the plain-JS kernel even where WebAssembly SIMD is available (a session's gemmKernel "js"). */
  allowWasm = defaultGemmKernel() !== "js",
): void {
  if (packedB && allowWasm) {
    gemmWasm(p, packedB);
    return;
  }
  if (allowWasm && p.M * p.N * p.K >= GEMM_WASM_MIN_MACS && wasmGemmAvailable()) gemmWasm(p);
  else gemm(p);
}
