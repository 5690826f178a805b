import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { NativeKernelError } from "../src/backends/cpu/native/index.js";
import { geluErfFloat32, geluTanh } from "../src/ops/elementwise-util.js";
import { assertClose, forEachConfig, native, rand, skipNative } from "./native-helpers.js";

interface Case {
  M: number;
  N: number;
  K: number;
  trans?: boolean;
  bias?: boolean;
  act?: "none" | "gelu" | "fastGelu";
  residual?: boolean;
  /** Extra columns of padding in every leading dimension and a leading offset. */
  pad?: number;
}

/** Float64 reference of act(A·op(B) + bias) + residual, and a tolerance per element. */
function reference(c: Case, a: Float32Array, b: Float32Array, bias?: Float32Array, res?: Float32Array) {
  const { M, N, K } = c;
  const pad = c.pad ?? 0;
  const lda = K + pad;
  const ldb = (c.trans ? K : N) + pad;
  const want = new Float64Array(M * N);
  const tol = new Float64Array(M * N);
  for (let i = 0; i < M; i++)
    for (let j = 0; j < N; j++) {
      let s = 0;
      let mag = 0;
      for (let k = 0; k < K; k++) {
        const x = a[pad + i * lda + k]! * b[pad + (c.trans ? j * ldb + k : k * ldb + j)]!;
        s += x;
        mag += Math.abs(x);
      }
      if (bias) s = Math.fround(s + bias[j]!);
      if (c.act === "gelu") s = geluErfFloat32(s);
      if (c.act === "fastGelu") s = geluTanh(s);
      const r = res ? res[pad + i * (N + pad) + j]! : 0;
      want[i * N + j] = s + r;
      tol[i * N + j] = 3e-6 * (mag + Math.abs(bias?.[j] ?? 0) + Math.abs(r)) + 2e-7 * (1 + Math.abs(s));
    }
  return { want, tol };
}

function runCase(c: Case, what: string, edit?: (a: Float32Array, b: Float32Array) => void): void {
  forEachConfig((nk, label) => {
    const { M, N, K } = c;
    const pad = c.pad ?? 0;
    const a = rand(pad + M * (K + pad), 1 + M);
    const b = rand(pad + (c.trans ? N : K) * ((c.trans ? K : N) + pad), 2 + N);
    edit?.(a, b);
    const bias = c.bias ? rand(N, 3) : undefined;
    const res = c.residual ? rand(pad + M * (N + pad), 4) : undefined;
    const packed = nk.packWeights(b, K, N, { offset: pad, ld: (c.trans ? K : N) + pad, transposed: c.trans });
    // C starts as NaN: the GEMM overwrites it (BLAS beta = 0), nothing may leak through.
    const out = new Float32Array(pad + M * (N + pad)).fill(Number.NaN);
    nk.gemm(M, a, packed, out, {
      aOffset: pad,
      lda: K + pad,
      cOffset: pad,
      ldc: N + pad,
      bias,
      activation: c.act,
      residual: res,
      residualOffset: pad,
      ldr: N + pad,
    });
    const got = new Float32Array(M * N);
    for (let i = 0; i < M; i++) got.set(out.subarray(pad + i * (N + pad), pad + i * (N + pad) + N), i * N);
    const { want, tol } = reference(c, a, b, bias, res);
    assertClose(got, want, tol, `${what} ${label} ${M}x${N}x${K}`);
    // Padding between rows is never written.
    for (let i = 0; i < M; i++)
      for (let j = N; j < N + pad && i < M - 1; j++) assert.ok(Number.isNaN(out[pad + i * (N + pad) + j]!));
  });
}

test("GEMM: random and odd shapes against float64 (every ISA, 1 and 2 threads)", { skip: skipNative }, () => {
  const shapes: Case[] = [
    { M: 1, N: 1, K: 1 },
    { M: 1, N: 768, K: 768 },
    { M: 7, N: 33, K: 19 },
    { M: 8, N: 32, K: 256 },
    { M: 9, N: 31, K: 257 },
    { M: 130, N: 67, K: 300 },
    { M: 97, N: 200, K: 513, pad: 3 },
    { M: 33, N: 65, K: 40, trans: true, pad: 2 },
    { M: 200, N: 5, K: 3 },
    { M: 3, N: 1000, K: 7 },
  ];
  for (const s of shapes) runCase(s, "plain");
});

test("GEMM: random shapes, layouts and epilogues (fast-check, fixed seed) against float64", {
  skip: skipNative,
}, () => {
  // Shapes straddling the 8×32 register tile and the K blocks, any epilogue, padded leading dimensions;
  // every ISA × 1 and 2 threads per case (runCase), so a handful of cases.
  const caseArb: fc.Arbitrary<Case> = fc.record({
    M: fc.integer({ min: 1, max: 70 }),
    N: fc.integer({ min: 1, max: 100 }),
    K: fc.integer({ min: 1, max: 300 }),
    trans: fc.boolean(),
    bias: fc.boolean(),
    act: fc.constantFrom("none", "gelu", "fastGelu"),
    residual: fc.boolean(),
    pad: fc.integer({ min: 0, max: 3 }),
  });
  fc.assert(
    fc.property(caseArb, (c) => runCase(c, "property")),
    { numRuns: 12, seed: 20261129 },
  );
});

test("GEMM: fused epilogues bias, GELU (erf), FastGelu (tanh) and residual", { skip: skipNative }, () => {
  runCase({ M: 37, N: 70, K: 45, bias: true }, "bias");
  runCase({ M: 37, N: 70, K: 45, bias: true, act: "gelu" }, "bias+gelu");
  runCase({ M: 21, N: 50, K: 300, act: "fastGelu", pad: 1 }, "fastGelu");
  runCase({ M: 37, N: 70, K: 45, bias: true, residual: true, pad: 2 }, "bias+residual");
  runCase({ M: 16, N: 64, K: 16, bias: true, act: "gelu", residual: true }, "all");
});

test("GEMM: empty problems (M = 0, N = 0) and K = 0 (C = epilogue of zeros)", { skip: skipNative }, () => {
  forEachConfig((nk) => {
    const empty = nk.packWeights(new Float32Array(0), 5, 0);
    nk.gemm(3, new Float32Array(15), empty, new Float32Array(0));
    const w = nk.packWeights(new Float32Array(20), 5, 4);
    nk.gemm(0, new Float32Array(0), w, new Float32Array(0));
    const k0 = nk.packWeights(new Float32Array(0), 0, 4);
    const c = new Float32Array(8).fill(Number.NaN);
    nk.gemm(2, new Float32Array(0), k0, c, { bias: Float32Array.of(1, -2, 0.5, 0), activation: "gelu" });
    assertClose(c, [1, -2, 0.5, 0, 1, -2, 0.5, 0].map(geluErfFloat32), 1e-7, "K=0");
  });
});

test("GEMM: NaN and ±Inf propagate as in the float64 reference", { skip: skipNative }, () => {
  runCase({ M: 20, N: 40, K: 300 }, "nan/inf", (a, b) => {
    a[5 * 300 + 7] = Number.NaN; // row 5 all NaN
    a[9 * 300 + 260] = Number.POSITIVE_INFINITY; // row 9: ±inf (second K block), NaN where b is 0
    b[260 * 40 + 3] = 0;
    b[11 * 40 + 30] = Number.NEGATIVE_INFINITY; // column 30: -inf·a, NaN where it meets the +inf
  });
  runCase({ M: 9, N: 40, K: 17, bias: true, act: "gelu" }, "gelu of inf", (a) => {
    a[2 * 17] = Number.POSITIVE_INFINITY;
    a[3 * 17] = Number.NEGATIVE_INFINITY;
  });
});

test("GEMM: bad offsets and sizes throw NativeKernelError with a stable code", { skip: skipNative }, () => {
  const nk = native!;
  const w = nk.packWeights(rand(12, 1), 3, 4);
  const err = (f: () => void) =>
    assert.throws(f, (e: unknown) => e instanceof NativeKernelError && e.code === "ERR_MHAFUSE_NATIVE_ARG");
  err(() => nk.gemm(2, new Float32Array(5), w, new Float32Array(8)));
  err(() => nk.gemm(2, new Float32Array(6), w, new Float32Array(8), { cOffset: 1 }));
  err(() => nk.packWeights(new Float32Array(11), 3, 4));
  err(() => nk.gemm(1, new Float32Array(3), w, new Float32Array(4), { bias: new Float32Array(3) }));
  err(() => nk.gemm(1, new Float32Array(3), w, new Float32Array(4), { lda: 2 }));
});
