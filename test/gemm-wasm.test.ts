import assert from "node:assert/strict";
import { after, test } from "node:test";
import { closeGemmWorkers, type GemmProblem, gemmParallel } from "../src/backends/cpu/gemm-parallel.js";
import { gemmFast, gemmWasm, gemmWasmStats, wasmGemmAvailable } from "../src/backends/cpu/gemm-wasm.js";
import { markImmutable } from "../src/backends/cpu/immutable.js";
import { assertMatches, rand, reference } from "./gemm-helpers.js";

after(() => closeGemmWorkers());

/** Offsets and padded leading dims; C holds values (beta reads them) and NaN at every 5th (beta = 0 ignores). */
function problem(
  M: number,
  N: number,
  K: number,
  transA: boolean,
  transB: boolean,
  seed: number,
): GemmProblem {
  const [ar, ac] = transA ? [K, M] : [M, K];
  const [br, bc] = transB ? [N, K] : [K, N];
  const lda = ac + 3;
  const ldb = bc + 1;
  const ldc = N + 2;
  const aOffset = 5;
  const bOffset = 2;
  const cOffset = 7;
  const beta = [0, -0.5, 1, 2][seed % 4]!;
  const C = rand(cOffset + M * ldc + 3, seed + 2);
  if (beta === 0) for (let i = cOffset; i < C.length - 3; i += 5) C[i] = Number.NaN;
  const alpha = [0.75, 1, -2][seed % 3]!;
  const A = rand(aOffset + ar * lda, seed);
  const B = rand(bOffset + br * ldb, seed + 1);
  return { transA, transB, M, N, K, alpha, A, aOffset, lda, B, bOffset, ldb, beta, C, cOffset, ldc };
}

const args = (p: GemmProblem): [GemmProblem] => [p];

const SIZES = [1, 3, 17, 65, 130];
const SHAPES: [number, number, number][] = [
  ...SIZES.map((n): [number, number, number] => [n, n, n]),
  [1, 300, 257],
  [3, 130, 65],
  [17, 65, 130],
  [65, 17, 300],
  [130, 257, 3],
  [300, 1, 129],
  [300, 257, 129],
  [33, 41, 1000],
];

test("WebAssembly SIMD is available on Node 20+ (else the JS kernel silently takes over)", () => {
  assert.equal(wasmGemmAvailable(), true);
});

test("gemmWasm matches a float64 reference: odd sizes, all transposes, alpha/beta, offsets, leading dims", () => {
  let seed = 1;
  for (const [M, N, K] of SHAPES) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const p = problem(M, N, K, transA, transB, seed++);
        const ref = reference(p);
        const calls = gemmWasmStats.calls;
        gemmWasm(...args(p));
        assert.equal(gemmWasmStats.calls, calls + 1, "the wasm kernel did not run");
        assertMatches(p.C, ref, `${M}x${N}x${K} transA=${transA} transB=${transB} beta=${p.beta}`);
      }
    }
  }
});

test("alpha = 0 or K = 0 only scales C (beta = 0 clears NaN)", () => {
  for (const [alpha, K] of [
    [0, 5],
    [1, 0],
  ] as const) {
    const p = { ...problem(9, 11, 5, false, false, 4), alpha, K };
    const ref = reference(p);
    gemmWasm(...args(p));
    assertMatches(p.C, ref, `alpha=${alpha} K=${K}`);
  }
});

test("gemmParallel runs the wasm kernel on caller and workers; immutable B is packed once and reused", () => {
  for (const transB of [false, true]) {
    const p = problem(96, 300, 129, true, transB, 20 + +transB);
    const calls = gemmWasmStats.calls;
    let ref = reference(p);
    const c0 = Float32Array.from(p.C);
    gemmParallel(...args(p), { mode: "always", threads: 2 });
    assertMatches(p.C, ref, `parallel transB=${transB}`);
    p.C.set(c0);
    // Which thread claims units is a race (a warm worker may take them all on a busy machine), so the
    // calling thread's kernel is checked on a run that stays on it.
    gemmParallel(...args(p), { mode: "never" });
    assertMatches(p.C, ref, `caller transB=${transB}`);
    assert.ok(gemmWasmStats.calls > calls, "the wasm kernel did not run on the calling thread");
    // Weights: packed once into shared panels, every unit (column blocks here, N > M) copies its slice.
    markImmutable(p.B);
    const packs = gemmWasmStats.packedBCopies;
    for (let r = 0; r < 3; r++) {
      p.C.set(rand(p.C.length, 60 + r));
      ref = reference(p);
      gemmParallel(...args(p), { mode: "always", threads: 2 });
      assertMatches(p.C, ref, `packed B, transB=${transB}, run ${r}`);
    }
    assert.equal(gemmWasmStats.packedBCopies, packs + 1);
    // Row blocks (M > N) and the single-threaded path read the same cached panels.
    const M = 400;
    const q: GemmProblem = { ...p, M, A: rand(M * 129, 32), aOffset: 0, lda: 129, transA: false };
    q.C = rand(q.cOffset + M * q.ldc + 3, 31);
    for (const mode of ["always", "never"] as const) {
      const before = Float32Array.from(q.C);
      ref = reference(q);
      gemmParallel(...args(q), { mode, threads: 2 });
      assertMatches(q.C, ref, `packed B reused, mode=${mode}`);
      q.C.set(before);
    }
    assert.equal(gemmWasmStats.packedBCopies, packs + 1);
  }
});

test("tiny problems take the JS kernel", () => {
  const p = problem(3, 3, 3, false, false, 9);
  const ref = reference(p);
  const calls = gemmWasmStats.calls;
  gemmFast(...args(p));
  assert.equal(gemmWasmStats.calls, calls);
  assertMatches(p.C, ref, "tiny");
});
