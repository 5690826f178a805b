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
    { numRuns: 300 },
  );
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
      runAttentionProblems([a, b], { mode: "always", threads: 3, rowsPerUnit: 2 });
      checkAgainstReference(a);
      checkAgainstReference(b);
    }),
    { numRuns: 25 },
  );
});

test("attentionParallel (async) runs on worker threads (tsx entry) and fills plain output arrays", async () => {
  let workerUnits = 0;
  await fc.assert(
    fc.asyncProperty(problemArb, async (x) => {
      const a = buildProblem(x);
      const stats = await attentionParallel(a, { threads: 2, rowsPerUnit: 3 });
      workerUnits += stats.workerUnits;
      checkAgainstReference(a);
    }),
    { numRuns: 20 },
  );
  // The caller only picks up units when workers cannot start: here they must have done the work.
  assert.ok(workerUnits > 0, "no unit ran on a worker thread");
  await closeAttentionWorkers();
});
