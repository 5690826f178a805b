import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { cpuCompute } from "../src/backends/cpu/compute.js";
import {
  closeGemmWorkers,
  type GemmProblem,
  gemmBatchParallel,
  gemmParallel,
  gemmParallelStats,
  warmGemmWorkers,
} from "../src/backends/cpu/gemm-parallel.js";
import { markImmutable } from "../src/backends/cpu/immutable.js";
import { cpuKernels } from "../src/backends/cpu/kernels.js";
import { cpuThreads } from "../src/backends/cpu/thread-pool.js";
import type { Node } from "../src/ir/graph.js";
import { Tensor } from "../src/ir/tensor.js";
import { assertMatches, rand, reference } from "./gemm-helpers.js";

const REPO = fileURLToPath(new URL("../", import.meta.url));

after(() => closeGemmWorkers());

/** A problem with offsets and padded leading dimensions; C starts filled with values (beta reads them). */
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
  return {
    transA,
    transB,
    M,
    N,
    K,
    alpha: 0.75,
    A: rand(aOffset + ar * lda, seed),
    aOffset,
    lda,
    B: rand(bOffset + br * ldb, seed + 1),
    bOffset,
    ldb,
    beta: [0, -0.5, 1][seed % 3]!,
    C: rand(cOffset + M * ldc + 3, seed + 2),
    cOffset,
    ldc,
  };
}

function run(p: GemmProblem, opts: Parameters<typeof gemmParallel>[1]): void {
  gemmParallel(p, opts);
}

const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [3, 3, 3],
  [1, 300, 257],
  [3, 130, 65],
  [17, 65, 130],
  [65, 17, 300],
  [130, 257, 3],
  [300, 1, 129],
  [300, 257, 129],
];

test("gemmParallel matches a float64 reference: odd sizes, all transposes, alpha/beta, offsets, leading dims", () => {
  let seed = 1;
  for (const [M, N, K] of SHAPES) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const p = problem(M, N, K, transA, transB, seed++);
        const ref = reference(p);
        const before = gemmParallelStats.parallelCalls;
        run(p, { mode: "always", threads: 2 });
        assert.equal(gemmParallelStats.parallelCalls, before + 1, "did not take the parallel path");
        assertMatches(p.C, ref, `${M}x${N}x${K} transA=${transA} transB=${transB}`);
      }
    }
  }
});

test("auto mode: a large problem goes parallel and workers take units; a small one stays on the caller", async () => {
  await warmGemmWorkers(2);
  const small = problem(8, 8, 8, false, false, 40);
  const before = gemmParallelStats.parallelCalls;
  run(small, { threads: 2 });
  assert.equal(gemmParallelStats.parallelCalls, before, "a tiny GEMM should not be handed off");
  // Workers are warm, but a loaded machine may still let the caller take every unit of one run: retry for a while.
  const workerUnits = gemmParallelStats.workerUnits;
  const deadline = Date.now() + 15_000;
  for (let attempt = 0; Date.now() < deadline && gemmParallelStats.workerUnits === workerUnits; attempt++) {
    const p = problem(300, 257, 129, attempt % 2 === 1, attempt % 3 === 1, 50 + attempt);
    const ref = reference(p);
    const calls = gemmParallelStats.parallelCalls;
    run(p, { threads: 2 });
    assert.equal(gemmParallelStats.parallelCalls, calls + 1, "300x257x129 should go parallel");
    assertMatches(p.C, ref, `auto attempt ${attempt}`);
  }
  assert.ok(gemmParallelStats.workerUnits > workerUnits, "no unit ran on a worker thread");
});

test("only immutable B operands (initializers) are cached in shared memory; others follow rewrites", () => {
  const p = problem(64, 96, 80, false, true, 7);
  const copies = gemmParallelStats.bCopies;
  // Not marked immutable: copied with A every call, so rewriting it in place is seen.
  run(p, { mode: "always", threads: 2 });
  p.B.set(rand(p.B.length, 99));
  p.beta = 0;
  const ref = reference(p);
  run(p, { mode: "always", threads: 2 });
  assertMatches(p.C, ref, "after rewriting B");
  assert.equal(gemmParallelStats.bCopies, copies);
  // Marked immutable (as the engine marks initializers): one cached copy, reused.
  markImmutable(p.B);
  run(p, { mode: "always", threads: 2 });
  run(p, { mode: "always", threads: 2 });
  assert.equal(gemmParallelStats.bCopies, copies + 1);
  assertMatches(p.C, ref, "cached B");
  // Already-shared operands are used in place.
  const shared = new Float32Array(new SharedArrayBuffer(p.B.byteLength));
  shared.set(p.B);
  run({ ...p, B: shared }, { mode: "always", threads: 2 });
  assert.equal(gemmParallelStats.bCopies, copies + 1);
});

test("gemmBatchParallel: several problems sharing A, B and C arrays", () => {
  const M = 33;
  const N = 47;
  const K = 29;
  const batch = 5;
  const A = rand(batch * M * K, 3);
  const B = rand(2 * K * N, 4);
  const C = rand(batch * M * N, 5);
  const problems: GemmProblem[] = Array.from({ length: batch }, (_, i) => ({
    ...{ transA: false, transB: i % 2 === 1, M, N, K, alpha: 1, A, aOffset: i * M * K, lda: K },
    ...{ B, bOffset: (i % 2) * K * N, ldb: i % 2 === 1 ? K : N, beta: 0, C, cOffset: i * M * N, ldc: N },
  }));
  const refs = problems.map((p) => reference(p));
  const expected = new Float64Array(C.length);
  const scale = new Float64Array(C.length);
  problems.forEach((p, i) => {
    const range = [p.cOffset, p.cOffset + M * N] as const;
    expected.set(refs[i]!.c.subarray(...range), p.cOffset);
    scale.set(refs[i]!.scale.subarray(...range), p.cOffset);
  });
  const before = gemmParallelStats.parallelCalls;
  gemmBatchParallel(problems, { mode: "always", threads: 2 });
  assert.equal(gemmParallelStats.parallelCalls, before + 1);
  assertMatches(C, { c: expected, scale }, "batched");
});

test("the CPU MatMul (batched and folded) and Gemm kernels run through the parallel GEMM", () => {
  const node = (opType: string, n: number): Node => ({
    name: opType,
    opType,
    domain: "",
    inputs: Array.from({ length: n }, (_, i) => `in${i}`),
    outputs: ["out"],
    attrs: opType === "Gemm" ? { transB: { type: "int", value: 1 } } : {},
  });
  const compute = cpuCompute({ threads: cpuThreads() });
  const runNode = (n: Node, inputs: Tensor[]) => {
    const kernel = cpuKernels.find(n, 17, ["float32"])!;
    return (kernel.run({ node: n, opset: 17, compute, allowAsync: false }, inputs) as Tensor[])[0]!;
  };
  const check = (out: Tensor, p: GemmProblem) => {
    const ref = reference(p);
    assertMatches(out.data as Float32Array, ref, p.transB ? "Gemm" : "MatMul");
  };
  const A = rand(2 * 3 * 40 * 64, 11);
  const W = rand(64 * 72, 12);
  const base = { transA: false, M: 240, N: 72, K: 64, alpha: 1, A, aOffset: 0, lda: 64, B: W, bOffset: 0 };
  const calls = gemmParallelStats.parallelCalls;
  // [2, 3, 40, 64] · [64, 72]: batch folded into M = 240.
  check(
    runNode(node("MatMul", 2), [
      new Tensor("float32", A, [2, 3, 40, 64]),
      new Tensor("float32", W, [64, 72]),
    ]),
    {
      ...base,
      transB: false,
      ldb: 72,
      beta: 0,
      C: new Float32Array(240 * 72),
      cOffset: 0,
      ldc: 72,
    },
  );
  // [6, 40, 64] · [6, 64, 12]: one problem per matrix.
  const Bb = rand(6 * 64 * 12, 13);
  const out = runNode(node("MatMul", 2), [
    new Tensor("float32", A, [6, 40, 64]),
    new Tensor("float32", Bb, [6, 64, 12]),
  ]);
  for (let i = 0; i < 6; i++) {
    const p: GemmProblem = {
      ...{ transA: false, transB: false, M: 40, N: 12, K: 64, alpha: 1, A, aOffset: i * 40 * 64, lda: 64 },
      ...{ B: Bb, bOffset: i * 64 * 12, ldb: 12, beta: 0, C: new Float32Array(40 * 12), cOffset: 0, ldc: 12 },
    };
    assertMatches((out.data as Float32Array).subarray(i * 480, (i + 1) * 480), reference(p), `batch ${i}`);
  }
  // Gemm with transB and a broadcast bias row.
  const bias = rand(18, 14);
  const Wt = rand(18 * 64, 15);
  const C = new Float32Array(240 * 18);
  for (let i = 0; i < 240; i++) C.set(bias, i * 18);
  check(
    runNode(node("Gemm", 3), [
      new Tensor("float32", A, [240, 64]),
      new Tensor("float32", Wt, [18, 64]),
      new Tensor("float32", bias, [18]),
    ]),
    { ...base, N: 18, B: Wt, transB: true, ldb: 64, beta: 1, C, cOffset: 0, ldc: 18 },
  );
  // 2.2 (folded), 0.4 (batched) and 0.55 MFLOP: below the auto threshold, so these ran on the caller.
  assert.equal(gemmParallelStats.parallelCalls, calls);
  const big = new Tensor("float32", rand(256 * 256, 16), [256, 256]);
  runNode(node("MatMul", 2), [big, big]);
  assert.equal(gemmParallelStats.parallelCalls, calls + (cpuThreads() > 1 ? 1 : 0));
});

test("compiled JS (like dist/): the GEMM worker loads as .js and takes units", () => {
  const out = mkdtempSync(join(tmpdir(), "mhafuse-gemm-dist-"));
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  execFileSync(
    process.execPath,
    [
      tsc,
      ...["--outDir", out, "--rootDir", "src", "--module", "nodenext", "--moduleResolution", "nodenext"],
      ...["--target", "es2022", "--skipLibCheck", "--types", "node", "--strict"],
      "src/backends/cpu/gemm-parallel.ts",
      "src/backends/cpu/gemm-worker.ts",
    ],
    { cwd: REPO },
  );
  // Plain node, no tsx: only .js can load. A = ones, B = ones: every entry of C is K.
  const script = `
    const m = await import(${JSON.stringify(`file://${out}/backends/cpu/gemm-parallel.js`)});
    await m.warmGemmWorkers(2);
    const M = 300, N = 257, K = 129;
    const A = new Float32Array(M * K).fill(1), B = new Float32Array(K * N).fill(1);
    let ok = true;
    for (const end = Date.now() + 15000; Date.now() < end && m.gemmParallelStats.workerUnits === 0; ) {
      const C = new Float32Array(M * N);
      m.gemmParallel(
        { transA: false, transB: false, M, N, K, alpha: 1, A, aOffset: 0, lda: K, B, bOffset: 0, ldb: N, beta: 0, C, cOffset: 0, ldc: N },
        { threads: 2 },
      );
      ok &&= C.every((x) => x === K);
    }
    // Awaiting the close under top-level await must not end the process early (exit code 13).
    await m.closeGemmWorkers();
    console.log(JSON.stringify({ ok, stats: m.gemmParallelStats }));
  `;
  const res = JSON.parse(
    execFileSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" }),
  );
  assert.equal(res.ok, true);
  assert.ok(res.stats.parallelCalls > 0, "did not take the parallel path");
  assert.ok(res.stats.workerUnits > 0, "no unit ran on a worker thread");
});
