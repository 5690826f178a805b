import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  type AttentionArgs,
  attentionCore,
  attentionParallel,
  closeAttentionWorkers,
  runAttentionProblems,
  type StridedLayout,
} from "../src/backends/cpu/attention-core.js";
import { attentionWasmStats, wasmAttentionAvailable } from "../src/backends/cpu/attention-wasm.js";

/** MHAFUSE_NO_WASM=1 or MHAFUSE_ATTENTION_KERNEL=js run the JS kernel only: wasm-only cases skip. */
const noWasm =
  process.env.MHAFUSE_NO_WASM || process.env.MHAFUSE_ATTENTION_KERNEL === "js"
    ? "wasm kernel switched off"
    : false;

/** Plain float64 attention with the contract's semantics, one (b, n, i) row at a time. */
function referenceAttention(a: AttentionArgs): Float64Array {
  const out = new Float64Array(a.out.length);
  const group = a.numHeads / a.kvNumHeads;
  const at = (l: StridedLayout, b: number, h: number, s: number) =>
    l.offset + b * l.batchStride + h * l.headStride + s * l.seqStride;
  for (let b = 0; b < a.batch; b++)
    for (let n = 0; n < a.numHeads; n++) {
      const g = Math.floor(n / group);
      for (let i = 0; i < a.seqQ; i++) {
        const o = at(a.outLayout, b, n, i);
        const qLen = a.queryLengths ? a.queryLengths[b]! : a.seqQ;
        const kLen = a.keyLengths ? a.keyLengths[b]! : a.seqKV;
        const scores: [number, number][] = [];
        if (i < qLen)
          for (let j = 0; j < Math.min(kLen, a.seqKV); j++) {
            if (a.causalOffset !== undefined && j > i + a.causalOffset) continue;
            let s = 0;
            for (let h = 0; h < a.headSize; h++)
              s += a.q[at(a.qLayout, b, n, i) + h]! * a.k[at(a.kLayout, b, g, j) + h]!;
            s *= a.scale;
            if (a.bias) {
              const bi = a.bias;
              s += bi.data[bi.offset + b * bi.batchStride + n * bi.headStride + i * bi.rowStride + j]!;
            }
            scores.push([j, s]);
          }
        const max = Math.max(...scores.map(([, s]) => s));
        if (scores.length === 0 || max === Number.NEGATIVE_INFINITY) continue; // zeros
        let sum = 0;
        for (const [, s] of scores) sum += Math.exp(s - max);
        for (const [j, s] of scores) {
          const p = Math.exp(s - max) / sum;
          for (let h = 0; h < a.vHeadSize; h++) out[o + h]! += p * a.v[at(a.vLayout, b, g, j) + h]!;
        }
      }
    }
  return out;
}

function assertClose(actual: Float32Array, expected: Float64Array, rel = 1e-5): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < actual.length; i++) {
    const tol = rel * Math.max(1, Math.abs(expected[i]!));
    assert.ok(
      Math.abs(actual[i]! - expected[i]!) <= tol,
      `element ${i}: got ${actual[i]}, expected ${expected[i]}`,
    );
  }
}

/** A [B, heads, S, D] tensor in either BSNH or BNSH order, with a leading offset. */
function layoutFor(order: "bsnh" | "bnsh", B: number, N: number, S: number, D: number, offset: number) {
  const layout: StridedLayout =
    order === "bsnh"
      ? { offset, batchStride: S * N * D, headStride: D, seqStride: N * D }
      : { offset, batchStride: N * S * D, headStride: S * D, seqStride: D };
  return { layout, size: offset + B * N * S * D };
}

function randomData(size: number, seed: number): Float32Array {
  const a = new Float32Array(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    a[i] = ((x >>> 0) / 2 ** 32) * 4 - 2;
  }
  return a;
}

const problemArb = fc
  .record({
    batch: fc.integer({ min: 1, max: 3 }),
    kvNumHeads: fc.integer({ min: 1, max: 3 }),
    group: fc.integer({ min: 1, max: 3 }),
    seqQ: fc.integer({ min: 1, max: 9 }),
    seqKV: fc.integer({ min: 1, max: 140 }), // > one key block of 64
    headSize: fc.integer({ min: 1, max: 12 }),
    vHeadSize: fc.integer({ min: 1, max: 12 }),
    orders: fc.tuple(...[0, 1, 2, 3].map(() => fc.constantFrom("bsnh" as const, "bnsh" as const))),
    offsets: fc.tuple(...[0, 1, 2, 3].map(() => fc.integer({ min: 0, max: 5 }))),
    seed: fc.integer({ min: 1, max: 2 ** 30 }),
    useKeyLengths: fc.boolean(),
    useQueryLengths: fc.boolean(),
    causal: fc.option(fc.integer({ min: -3, max: 150 }), { nil: undefined }),
    biasKind: fc.constantFrom("none", "full", "perKeyOnly", "perHead", "infRows"),
  })
  .chain((p) =>
    fc.record({
      p: fc.constant(p),
      keyLengths: fc.array(fc.integer({ min: 0, max: p.seqKV }), { minLength: p.batch, maxLength: p.batch }),
      queryLengths: fc.array(fc.integer({ min: 0, max: p.seqQ }), { minLength: p.batch, maxLength: p.batch }),
    }),
  );

type ProblemSample = typeof problemArb extends fc.Arbitrary<infer T> ? T : never;

function buildProblem(x: ProblemSample): AttentionArgs {
  const { p } = x;
  const numHeads = p.kvNumHeads * p.group;
  const ql = layoutFor(p.orders[0], p.batch, numHeads, p.seqQ, p.headSize, p.offsets[0]);
  const kl = layoutFor(p.orders[1], p.batch, p.kvNumHeads, p.seqKV, p.headSize, p.offsets[1]);
  const vl = layoutFor(p.orders[2], p.batch, p.kvNumHeads, p.seqKV, p.vHeadSize, p.offsets[2]);
  const ol = layoutFor(p.orders[3], p.batch, numHeads, p.seqQ, p.vHeadSize, p.offsets[3]);
  const B = p.batch;
  const S = p.seqQ;
  const T = p.seqKV;
  let bias: AttentionArgs["bias"];
  if (p.biasKind === "full")
    bias = {
      data: randomData(B * numHeads * S * T, p.seed + 7),
      offset: 0,
      batchStride: numHeads * S * T,
      headStride: S * T,
      rowStride: T,
    };
  else if (p.biasKind === "perKeyOnly") {
    // [B, 1, 1, T] like a HF padding mask, with finfo.min on some keys.
    const data = randomData(B * T, p.seed + 9);
    for (let i = 0; i < data.length; i += 3) data[i] = -3.4028234663852886e38;
    bias = { data, offset: 0, batchStride: T, headStride: 0, rowStride: 0 };
  } else if (p.biasKind === "perHead")
    bias = {
      data: randomData(2 + numHeads * T, p.seed + 5),
      offset: 2,
      batchStride: 0,
      headStride: T,
      rowStride: 0,
    };
  else if (p.biasKind === "infRows") {
    // Some rows entirely -inf, some keys -inf: those rows must come out as zeros.
    const data = randomData(S * T, p.seed + 3);
    for (let i = 0; i < S; i++)
      for (let j = 0; j < T; j++) if (i % 2 === 0 || j % 3 === 0) data[i * T + j] = Number.NEGATIVE_INFINITY;
    bias = { data, offset: 0, batchStride: 0, headStride: 0, rowStride: T };
  }
  return {
    batch: B,
    numHeads,
    kvNumHeads: p.kvNumHeads,
    seqQ: S,
    seqKV: T,
    headSize: p.headSize,
    vHeadSize: p.vHeadSize,
    scale: 1 / Math.sqrt(p.headSize),
    q: randomData(ql.size, p.seed),
    qLayout: ql.layout,
    k: randomData(kl.size, p.seed + 1),
    kLayout: kl.layout,
    v: randomData(vl.size, p.seed + 2),
    vLayout: vl.layout,
    out: new Float32Array(ol.size).fill(Number.NaN),
    outLayout: ol.layout,
    keyLengths: p.useKeyLengths ? x.keyLengths : undefined,
    queryLengths: p.useQueryLengths ? x.queryLengths : undefined,
    causalOffset: p.causal,
    bias,
  };
}

/** Out elements the layout covers; others keep their NaN fill and are not the core's business. */
function covered(a: AttentionArgs): Uint8Array {
  const mask = new Uint8Array(a.out.length);
  for (let b = 0; b < a.batch; b++)
    for (let n = 0; n < a.numHeads; n++)
      for (let i = 0; i < a.seqQ; i++) {
        const o =
          a.outLayout.offset +
          b * a.outLayout.batchStride +
          n * a.outLayout.headStride +
          i * a.outLayout.seqStride;
        mask.fill(1, o, o + a.vHeadSize);
      }
  return mask;
}

function checkAgainstReference(a: AttentionArgs): void {
  const expected = referenceAttention(a);
  const mask = covered(a);
  const got = a.out.filter((_, i) => mask[i]);
  assertClose(
    got,
    expected.filter((_, i) => mask[i]),
  );
}

test("attentionCore matches float64 attention: GQA, layouts, causal offsets, bias broadcast, lengths, -inf rows", () => {
  fc.assert(
    fc.property(problemArb, (x) => {
      const a = buildProblem(x);
      attentionCore(a);
      checkAgainstReference(a);
    }),
    { numRuns: 300, seed: 8101 },
  );
});

test("the WebAssembly SIMD kernel is the default and matches float64 attention (wasm stats prove it ran)", {
  skip: noWasm,
}, () => {
  assert.ok(wasmAttentionAvailable(), "WebAssembly SIMD attention kernel unavailable");
  let calls = attentionWasmStats.calls;
  fc.assert(
    fc.property(problemArb, (x) => {
      const a = buildProblem(x);
      attentionCore(a, "wasm");
      checkAgainstReference(a);
    }),
    { numRuns: 200, seed: 8102 },
  );
  assert.ok(attentionWasmStats.calls > calls, "the wasm kernel never ran");
  calls = attentionWasmStats.calls;
  const a = buildProblem(fc.sample(problemArb, { seed: 7, numRuns: 1 })[0]!);
  a.keyLengths = undefined;
  a.queryLengths = undefined;
  a.causalOffset = undefined;
  attentionCore(a); // default kernel
  assert.ok(attentionWasmStats.calls > calls, "attentionCore did not default to the wasm kernel");
});

test("the plain-JS fallback kernel still matches float64 attention", () => {
  fc.assert(
    fc.property(problemArb, (x) => {
      const a = buildProblem(x);
      attentionCore(a, "js");
      checkAgainstReference(a);
    }),
    { numRuns: 100, seed: 8103 },
  );
});

/** A problem past the wasm kernel's row chunk (256), row group (32) and key block (64), H = 64. */
function bigProblem(seed: number, order: "bsnh" | "bnsh" = "bsnh"): AttentionArgs {
  const x = fc.sample(problemArb, { seed, numRuns: 1 })[0]!;
  x.p = {
    ...x.p,
    orders: [order, order, order, order],
    batch: 2,
    kvNumHeads: 1,
    group: 2,
    seqQ: 300,
    seqKV: 333,
    headSize: 64,
    vHeadSize: 40,
    useKeyLengths: true,
    useQueryLengths: true,
    causal: 40,
    biasKind: "full",
  };
  x.keyLengths = [333, 250];
  x.queryLengths = [300, 271];
  return buildProblem(x);
}

test("long rows and keys (row chunks, groups, key blocks; causal, full bias, lengths): wasm and JS match float64", () => {
  for (const kernel of noWasm ? (["js"] as const) : (["wasm", "js"] as const)) {
    for (const order of ["bsnh", "bnsh"] as const) {
      const batches = attentionWasmStats.batches;
      const a = bigProblem(11, order);
      attentionCore(a, kernel);
      checkAgainstReference(a);
      // BSNH rows of all heads are copied in one piece per position; BNSH heads go one by one.
      if (kernel === "wasm")
        assert.equal(attentionWasmStats.batches - batches, order === "bsnh" ? a.batch : 0);
    }
  }
});

test("non-finite values and scores: the wasm kernel behaves as the JS kernel", { skip: noWasm }, () => {
  const cases: [string, (a: AttentionArgs) => void][] = [
    // Inf/NaN values only on keys no row may read (beyond keyLengths, past the causal limit): no effect.
    [
      "unread inf values",
      (a) => {
        a.causalOffset = 0;
        a.keyLengths = [5, 3];
        for (let j = 0; j < a.seqKV; j++)
          for (let b = 0; b < a.batch; b++) {
            if (j < a.keyLengths[b]! && j < a.seqQ) continue;
            const o = a.vLayout.offset + b * a.vLayout.batchStride + j * a.vLayout.seqStride;
            a.v[o] = j % 2 ? Number.POSITIVE_INFINITY : Number.NaN;
          }
      },
    ],
    // A NaN query row: its outputs are NaN, the other rows are untouched.
    ["NaN query row", (a) => a.q.fill(Number.NaN, a.qLayout.offset, a.qLayout.offset + a.headSize)],
    // An inf value on a readable key: inf/NaN where it is weighted, finite elsewhere.
    ["inf value", (a) => (a.v[a.vLayout.offset + 1] = Number.POSITIVE_INFINITY)],
    // -inf bias on every key of some rows (zeros), and on some keys of others.
    [
      "-inf bias",
      (a) => {
        const T = a.seqKV;
        const data = new Float32Array(a.seqQ * T);
        for (let i = 0; i < a.seqQ; i++)
          for (let j = 0; j < T; j++)
            if (i % 3 === 0 || j % 4 === 1) data[i * T + j] = Number.NEGATIVE_INFINITY;
        a.bias = { data, offset: 0, batchStride: 0, headStride: 0, rowStride: T };
      },
    ],
  ];
  for (const [name, edit] of cases) {
    const make = () => {
      const x = fc.sample(problemArb, { seed: 5, numRuns: 1 })[0]!;
      x.p = { ...x.p, batch: 2, kvNumHeads: 1, group: 2, seqQ: 7, seqKV: 70, headSize: 9, vHeadSize: 11 };
      x.p = { ...x.p, useKeyLengths: false, useQueryLengths: false, causal: undefined, biasKind: "none" };
      const a = buildProblem(x);
      edit(a);
      return a;
    };
    const w = make();
    const j = make();
    attentionCore(w, "wasm");
    attentionCore(j, "js");
    const mask = covered(w);
    for (let i = 0; i < w.out.length; i++) {
      if (!mask[i]) continue;
      const got = w.out[i]!;
      const want = j.out[i]!;
      if (Number.isNaN(want) || !Number.isFinite(want))
        assert.ok(Object.is(got, want), `${name} [${i}]: ${got} vs ${want}`);
      else
        assert.ok(
          Math.abs(got - want) <= 1e-5 * Math.max(1, Math.abs(want)),
          `${name} [${i}]: ${got} vs ${want}`,
        );
    }
  }
});

test("hand-computed 1 head, 2 keys: softmax weights e^1/(e^1+e^0)", () => {
  // q·k0 = 1, q·k1 = 0 (scale 1): weights [e/(e+1), 1/(e+1)] on v = [10, 20].
  const e = Math.E;
  const out = new Float32Array(1);
  const row = { offset: 0, batchStride: 2, headStride: 0, seqStride: 1 };
  attentionCore({
    batch: 1,
    numHeads: 1,
    kvNumHeads: 1,
    seqQ: 1,
    seqKV: 2,
    headSize: 1,
    vHeadSize: 1,
    scale: 1,
    q: new Float32Array([1]),
    qLayout: { offset: 0, batchStride: 1, headStride: 0, seqStride: 1 },
    k: new Float32Array([1, 0]),
    kLayout: row,
    v: new Float32Array([10, 20]),
    vLayout: row,
    out,
    outLayout: { offset: 0, batchStride: 1, headStride: 0, seqStride: 1 },
  });
  assert.ok(Math.abs(out[0]! - (10 * e + 20) / (e + 1)) < 1e-5);
});

test("finfo.min bias on every key is an ordinary number: uniform weights", () => {
  const out = new Float32Array(1);
  const row = { offset: 0, batchStride: 3, headStride: 0, seqStride: 1 };
  attentionCore({
    batch: 1,
    numHeads: 1,
    kvNumHeads: 1,
    seqQ: 1,
    seqKV: 3,
    headSize: 1,
    vHeadSize: 1,
    scale: 1,
    q: new Float32Array([0]),
    qLayout: { offset: 0, batchStride: 1, headStride: 0, seqStride: 1 },
    k: new Float32Array([1, 2, 3]),
    kLayout: row,
    v: new Float32Array([3, 6, 9]),
    vLayout: row,
    out,
    outLayout: { offset: 0, batchStride: 1, headStride: 0, seqStride: 1 },
    bias: {
      data: new Float32Array(3).fill(-3.4028234663852886e38),
      offset: 0,
      batchStride: 0,
      headStride: 0,
      rowStride: 0,
    },
  });
  assert.ok(Math.abs(out[0]! - 6) < 1e-5, `got ${out[0]}`);
});

test("runAttentionProblems on worker threads (sync, tsx worker entry) equals the reference", () => {
  fc.assert(
    fc.property(problemArb, (x) => {
      const a = buildProblem(x);
      const b = buildProblem(x);
      const stats = runAttentionProblems([a, b], { mode: "always", threads: 3, rowsPerUnit: 2 });
      if (!noWasm) assert.equal(stats.wasmUnits, stats.units, "a unit ran on the JS kernel");
      checkAgainstReference(a);
      checkAgainstReference(b);
    }),
    { numRuns: 25, seed: 8104 },
  );
});

test("attentionParallel (async) runs on worker threads (tsx entry) and fills plain output arrays", async () => {
  let workerUnits = 0;
  await fc.assert(
    fc.asyncProperty(problemArb, async (x) => {
      const a = buildProblem(x);
      const stats = await attentionParallel(a, { threads: 2, rowsPerUnit: 3 });
      workerUnits += stats.workerUnits;
      // Every thread, workers included, runs its own instance of the wasm kernel.
      if (!noWasm) assert.equal(stats.wasmUnits, stats.units, "a unit ran on the JS kernel");
      checkAgainstReference(a);
    }),
    { numRuns: 20, seed: 8105 },
  );
  // The caller only picks up units when workers cannot start: here they must have done the work.
  assert.ok(workerUnits > 0, "no unit ran on a worker thread");
  // Long rows over worker threads: packed keys and values reused across units, results as the reference.
  const big = bigProblem(13);
  const stats = await attentionParallel(big, { threads: 2, rowsPerUnit: 64 });
  if (!noWasm) assert.equal(stats.wasmUnits, stats.units);
  checkAgainstReference(big);
  await closeAttentionWorkers();
});
