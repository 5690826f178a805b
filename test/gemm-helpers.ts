import assert from "node:assert/strict";
import type { GemmProblem } from "../src/backends/cpu/gemm-parallel.js";

// Shared by the GEMM kernel tests: inputs, a float64 reference and its tolerance check.

/** Deterministic pseudo-random float32 values in [-1, 1). */
export function rand(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

/** Float64 reference of `gemm` on a copy of C; also returns Σ|a·b| + |beta·c| per element for a tolerance. */
export function reference(p: GemmProblem): { c: Float64Array; scale: Float64Array } {
  const c = Float64Array.from(p.C);
  const scale = new Float64Array(p.C.length);
  for (let i = 0; i < p.M; i++) {
    for (let j = 0; j < p.N; j++) {
      let acc = 0;
      let mag = 0;
      for (let k = 0; k < p.K; k++) {
        const a = p.A[p.aOffset + (p.transA ? k * p.lda + i : i * p.lda + k)]!;
        const b = p.B[p.bOffset + (p.transB ? j * p.ldb + k : k * p.ldb + j)]!;
        acc += a * b;
        mag += Math.abs(a * b);
      }
      const at = p.cOffset + i * p.ldc + j;
      const old = p.beta === 0 ? 0 : p.beta * c[at]!;
      c[at] = p.alpha * acc + old;
      scale[at] = Math.abs(p.alpha) * mag + Math.abs(old);
    }
  }
  return { c, scale };
}

/** Computed entries within float32 accumulation rounding of the reference; untouched entries (padding, NaN that
 * is not ours) keep their old value. */
export function assertMatches(
  actual: Float32Array,
  ref: { c: Float64Array; scale: Float64Array },
  what: string,
) {
  for (let i = 0; i < actual.length; i++) {
    // Untouched entries (padding, NaN that is not ours) must keep their old value; computed ones within
    // float32 accumulation rounding.
    const tol = 2e-6 * ref.scale[i]! + 1e-7;
    const d = Math.abs(actual[i]! - ref.c[i]!);
    const same = Number.isNaN(ref.c[i]!) && Number.isNaN(actual[i]!);
    if (!same && !(d <= tol + Math.abs(Math.fround(ref.c[i]!) - ref.c[i]!)))
      assert.fail(`${what}: element ${i} is ${actual[i]}, expected ${ref.c[i]} (tol ${tol})`);
  }
}
