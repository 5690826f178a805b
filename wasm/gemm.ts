// AssemblyScript source of the WebAssembly SIMD (128-bit, f32x4) GEMM micro-kernel used by
// src/backends/cpu/gemm-wasm.ts. Built by `npm run build:wasm` (asc -O3 --enable simd) and embedded as base64
// into src/backends/cpu/wasm/gemm-wasm.generated.ts by scripts/embed-wasm.mjs.
//
// The module owns no data: the JS side lays its buffers out in this module's memory (above the first page)
// and passes byte addresses. Matrices are row-major float32:
//   packB   op(B)[K×nc] (raw, leading dim ldb) → ⌈nc/NR⌉ panels, each K rows of NR contiguous values.
//   gemmBlock  C[mc×nc] (leading dim ldc, rows padded to MR and columns to NR) += alpha·op(A)·packed B,
//              K blocked by KC; each A block is packed (alpha folded in) into MR×KC row panels first.
// Edges are zero padded in the packed panels and C is padded, so the micro-kernel never branches on edges.
// Plain simd128 mul + add: Node 20's V8 (11.3) supports relaxed-simd (fused madd) only behind a flag.

/** Rows of the register tile (one splatted A value each). */
const MR: i32 = 4;
/** Columns of the register tile (two f32x4 vectors). */
const NR: i32 = 8;
/** Depth of a packed A block: MR·KC·4 bytes of A and KC·NR·4 bytes of B stay in L1 per tile. */
const KC: i32 = 256;

/** Packs op(B) (K rows, nc columns; element (k, j) at b + 4·(transB ? j·ldb + k : k·ldb + j)). */
export function packB(transB: i32, K: i32, nc: i32, b: usize, ldb: i32, dst: usize): void {
  for (let j0 = 0; j0 < nc; j0 += NR) {
    const width = min(NR, nc - j0);
    let d = dst + (<usize>j0 * <usize>K) * 4;
    if (!transB && width === NR) {
      let s = b + <usize>j0 * 4;
      const step = <usize>ldb * 4;
      for (let k = 0; k < K; k++) {
        v128.store(d, v128.load(s));
        v128.store(d, v128.load(s, 16), 16);
        s += step;
        d += NR * 4;
      }
    } else {
      for (let k = 0; k < K; k++) {
        for (let j = 0; j < NR; j++) {
          let v: f32 = 0;
          if (j < width) {
            const at = transB ? <usize>(j0 + j) * <usize>ldb + <usize>k : <usize>k * <usize>ldb + <usize>(j0 + j);
            v = load<f32>(b + at * 4);
          }
          store<f32>(d + <usize>j * 4, v);
        }
        d += NR * 4;
      }
    }
  }
}

/** Packs alpha·op(A)[0:mc, pc:pc+kc] into ⌈mc/MR⌉ panels of kc columns × MR contiguous values. */
function packA(transA: i32, mc: i32, pc: i32, kc: i32, alpha: f32, a: usize, lda: i32, dst: usize): void {
  const va = f32x4.splat(alpha);
  for (let i0 = 0; i0 < mc; i0 += MR) {
    const height = min(MR, mc - i0);
    let d = dst + (<usize>i0 * <usize>kc) * 4;
    if (transA && height === MR) {
      // op(A)(i, k) = A[k, i]: the MR values of one k are contiguous.
      let s = a + (<usize>pc * <usize>lda + <usize>i0) * 4;
      const step = <usize>lda * 4;
      for (let k = 0; k < kc; k++) {
        v128.store(d, f32x4.mul(v128.load(s), va));
        s += step;
        d += MR * 4;
      }
    } else if (!transA && height === MR) {
      const step = <usize>lda * 4;
      let s = a + (<usize>i0 * <usize>lda + <usize>pc) * 4;
      for (let k = 0; k < kc; k++) {
        store<f32>(d, alpha * load<f32>(s));
        store<f32>(d, alpha * load<f32>(s + step), 4);
        store<f32>(d, alpha * load<f32>(s + 2 * step), 8);
        store<f32>(d, alpha * load<f32>(s + 3 * step), 12);
        s += 4;
        d += MR * 4;
      }
    } else {
      for (let k = 0; k < kc; k++) {
        for (let i = 0; i < MR; i++) {
          let v: f32 = 0;
          if (i < height) {
            const row = <usize>(i0 + i);
            const col = <usize>(pc + k);
            v = alpha * load<f32>(a + (transA ? col * <usize>lda + row : row * <usize>lda + col) * 4);
          }
          store<f32>(d + <usize>i * 4, v);
        }
        d += MR * 4;
      }
    }
  }
}

/**
 * One column panel of B (kc×NR at bp) against every MR-row panel of the packed A block: C[0:mp·MR, 0:NR]
 * (at c, row stride ldc4 bytes) += A·B. A separate function so that V8 tiers it up on its own: the outer loops
 * run once per call and may stay in the baseline compiler.
 */
function panel(kc: i32, mPanels: i32, ap: usize, bp: usize, c: usize, ldc4: usize): void {
  const aStep = <usize>kc * MR * 4;
  for (let p = 0; p < mPanels; p++) {
    let c00 = f32x4.splat(0);
    let c01 = f32x4.splat(0);
    let c10 = f32x4.splat(0);
    let c11 = f32x4.splat(0);
    let c20 = f32x4.splat(0);
    let c21 = f32x4.splat(0);
    let c30 = f32x4.splat(0);
    let c31 = f32x4.splat(0);
    let a = ap;
    let b = bp;
    const end = ap + aStep;
    while (a < end) {
      const b0 = v128.load(b);
      const b1 = v128.load(b, 16);
      let av = v128.load32_splat(a);
      c00 = f32x4.add(c00, f32x4.mul(av, b0));
      c01 = f32x4.add(c01, f32x4.mul(av, b1));
      av = v128.load32_splat(a, 4);
      c10 = f32x4.add(c10, f32x4.mul(av, b0));
      c11 = f32x4.add(c11, f32x4.mul(av, b1));
      av = v128.load32_splat(a, 8);
      c20 = f32x4.add(c20, f32x4.mul(av, b0));
      c21 = f32x4.add(c21, f32x4.mul(av, b1));
      av = v128.load32_splat(a, 12);
      c30 = f32x4.add(c30, f32x4.mul(av, b0));
      c31 = f32x4.add(c31, f32x4.mul(av, b1));
      a += MR * 4;
      b += NR * 4;
    }
    let r = c + <usize>p * MR * ldc4;
    v128.store(r, f32x4.add(v128.load(r), c00));
    v128.store(r, f32x4.add(v128.load(r, 16), c01), 16);
    r += ldc4;
    v128.store(r, f32x4.add(v128.load(r), c10));
    v128.store(r, f32x4.add(v128.load(r, 16), c11), 16);
    r += ldc4;
    v128.store(r, f32x4.add(v128.load(r), c20));
    v128.store(r, f32x4.add(v128.load(r, 16), c21), 16);
    r += ldc4;
    v128.store(r, f32x4.add(v128.load(r), c30));
    v128.store(r, f32x4.add(v128.load(r, 16), c31), 16);
    ap = end;
  }
}

/**
 * C[mc×nc] += alpha·op(A)[mc×K]·B, B packed by packB (all K rows per panel). op(A)(i, k) is at
 * a + 4·(transA ? k·lda + i : i·lda + k). C (at c, leading dim ldc) must have room for ⌈mc/MR⌉·MR rows and
 * ⌈nc/NR⌉·NR columns; the padding receives garbage. packA needs ⌈mc/MR⌉·MR·KC floats at aPack.
 */
export function gemmBlock(
  transA: i32,
  mc: i32,
  nc: i32,
  K: i32,
  alpha: f32,
  a: usize,
  lda: i32,
  bPack: usize,
  c: usize,
  ldc: i32,
  aPack: usize,
): void {
  const mPanels = (mc + MR - 1) / MR;
  const ldc4 = <usize>ldc * 4;
  for (let pc = 0; pc < K; pc += KC) {
    const kc = min(KC, K - pc);
    packA(transA, mc, pc, kc, alpha, a, lda, aPack);
    for (let j0 = 0; j0 < nc; j0 += NR) {
      const bp = bPack + (<usize>j0 * <usize>K + <usize>pc * NR) * 4;
      panel(kc, mPanels, aPack, bp, c + <usize>j0 * 4, ldc4);
    }
  }
}

/** x[0:n] *= s (C ← beta·C before accumulating). */
export function scale(x: usize, n: i32, s: f32): void {
  const vs = f32x4.splat(s);
  const end = x + <usize>n * 4;
  const vend = x + (<usize>n & ~3) * 4;
  while (x < vend) {
    v128.store(x, f32x4.mul(v128.load(x), vs));
    x += 16;
  }
  while (x < end) {
    store<f32>(x, load<f32>(x) * s);
    x += 4;
  }
}
