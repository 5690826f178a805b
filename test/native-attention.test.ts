import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import type { AttentionArgs, StridedLayout } from "../src/backends/cpu/attention-core.js";
import { attentionRowsJs } from "../src/backends/cpu/attention-kernel.js";
import { qkvToContext } from "../src/engine/qkv.js";
import { Tensor } from "../src/ir/tensor.js";
import { forEachConfig, native, rand, skipNative } from "./native-helpers.js";

// The native attention against the JS kernel (attention-kernel.ts attentionRowsJs), whose semantics are the
// contract (it is itself tested against a float64 reference in qkv-attention-core.test.ts), and the packed op
// against qkvToContext.

function layoutFor(bsnh: boolean, B: number, N: number, S: number, D: number, offset: number) {
  const layout: StridedLayout = bsnh
    ? { offset, batchStride: S * N * D, headStride: D, seqStride: N * D }
    : { offset, batchStride: N * S * D, headStride: S * D, seqStride: D };
  return { layout, size: offset + B * N * S * D };
}

const problemArb = fc
  .record({
    batch: fc.integer({ min: 1, max: 3 }),
    kvNumHeads: fc.integer({ min: 1, max: 3 }),
    group: fc.integer({ min: 1, max: 3 }),
    seqQ: fc.integer({ min: 1, max: 70 }),
    seqKV: fc.integer({ min: 1, max: 140 }), // > two key blocks of 64
    headSize: fc.integer({ min: 1, max: 40 }),
    vHeadSize: fc.integer({ min: 1, max: 40 }),
    bsnh: fc.tuple(fc.boolean(), fc.boolean(), fc.boolean(), fc.boolean()),
    offset: fc.integer({ min: 0, max: 5 }),
    seed: fc.integer({ min: 1, max: 2 ** 30 }),
    lengths: fc.constantFrom("none", "keys", "both"),
    causal: fc.option(fc.integer({ min: -3, max: 150 }), { nil: undefined }),
    bias: fc.constantFrom("none", "full", "perKey", "infRows"),
  })
  .chain((p) =>
    fc.record({
      p: fc.constant(p),
      keyLengths: fc.array(fc.integer({ min: 0, max: p.seqKV }), { minLength: p.batch, maxLength: p.batch }),
      queryLengths: fc.array(fc.integer({ min: 0, max: p.seqQ }), { minLength: p.batch, maxLength: p.batch }),
    }),
  );

type Sample = typeof problemArb extends fc.Arbitrary<infer T> ? T : never;

function build(x: Sample): AttentionArgs {
  const { p } = x;
  const N = p.kvNumHeads * p.group;
  const [qb, kb, vb, ob] = p.bsnh;
  const ql = layoutFor(qb, p.batch, N, p.seqQ, p.headSize, p.offset);
  const kl = layoutFor(kb, p.batch, p.kvNumHeads, p.seqKV, p.headSize, p.offset + 1);
  const vl = layoutFor(vb, p.batch, p.kvNumHeads, p.seqKV, p.vHeadSize, 0);
  const ol = layoutFor(ob, p.batch, N, p.seqQ, p.vHeadSize, p.offset);
  const S = p.seqQ;
  const T = p.seqKV;
  let bias: AttentionArgs["bias"];
  if (p.bias === "full") {
    const data = rand(p.batch * N * S * T, p.seed + 7);
    bias = { data, offset: 0, batchStride: N * S * T, headStride: S * T, rowStride: T };
  } else if (p.bias === "perKey") {
    const data = rand(p.batch * T, p.seed + 9);
    for (let i = 0; i < data.length; i += 3) data[i] = -3.4028234663852886e38;
    bias = { data, offset: 0, batchStride: T, headStride: 0, rowStride: 0 };
  } else if (p.bias === "infRows") {
    const data = rand(S * T, p.seed + 3);
    for (let i = 0; i < S; i++)
      for (let j = 0; j < T; j++) if (i % 2 === 0 || j % 3 === 0) data[i * T + j] = Number.NEGATIVE_INFINITY;
    bias = { data, offset: 0, batchStride: 0, headStride: 0, rowStride: T };
  }
  return {
    batch: p.batch,
    numHeads: N,
    kvNumHeads: p.kvNumHeads,
    seqQ: S,
    seqKV: T,
    headSize: p.headSize,
    vHeadSize: p.vHeadSize,
    scale: 1 / Math.sqrt(p.headSize),
    q: rand(ql.size, p.seed).map((v) => v * 2),
    qLayout: ql.layout,
    k: rand(kl.size, p.seed + 1).map((v) => v * 2),
    kLayout: kl.layout,
    v: rand(vl.size, p.seed + 2),
    vLayout: vl.layout,
    out: new Float32Array(ol.size).fill(Number.NaN),
    outLayout: ol.layout,
    keyLengths: p.lengths !== "none" ? x.keyLengths : undefined,
    queryLengths: p.lengths === "both" ? x.queryLengths : undefined,
    causalOffset: p.causal,
    bias,
  };
}
/** One problem from a fixed seed (the tests then set the fields they are about). */
const sample = (seed = 1): Sample => fc.sample(problemArb, { seed, numRuns: 1 })[0]!;

/** Native and JS kernel on copies of the same problem; elements agree (NaN where the JS kernel has NaN). */
function compare(a: AttentionArgs, what: string): void {
  // The JS kernel itself (attentionRowsJs), which the native kernel mirrors: attentionCore would route rows
  // with NaN/Inf inputs to the unfused-semantics path (attention-nonfinite.ts), which sits above both.
  const js = { ...a, out: a.out.slice() };
  for (let b = 0; b < js.batch; b++)
    for (let n = 0; n < js.numHeads; n++) attentionRowsJs(js, b, n, 0, js.seqQ);
  const nat = { ...a, out: a.out.slice() };
  native!.attention(nat);
  for (let i = 0; i < js.out.length; i++) {
    const want = js.out[i]!;
    const got = nat.out[i]!;
    if (Number.isNaN(want) || !Number.isFinite(want))
      assert.ok(Object.is(got, want), `${what} [${i}]: ${got} vs ${want}`);
    else
      assert.ok(
        Math.abs(got - want) <= 2e-5 * Math.max(1, Math.abs(want)),
        `${what} [${i}]: ${got} vs ${want}`,
      );
  }
}

test("attention: random problems (strides, GQA, Sq ≠ Skv, causal, bias, lengths) match the JS kernel", {
  skip: skipNative,
}, () => {
  forEachConfig((_, label) => {
    fc.assert(
      fc.property(problemArb, (x) => compare(build(x), label)),
      { numRuns: 40, seed: 42 },
    );
  });
});

test("attention: BERT-sized heads (64) and long sequences, one key block and several", {
  skip: skipNative,
}, () => {
  forEachConfig((_, label) => {
    for (const [S, T, H] of [
      [1, 1, 64],
      [128, 128, 64],
      [77, 300, 64],
      [5, 513, 128],
    ] as const) {
      const x = sample();
      x.p = { ...x.p, batch: 2, kvNumHeads: 2, group: 2, seqQ: S, seqKV: T, headSize: H, vHeadSize: H };
      x.p = { ...x.p, lengths: "none", causal: undefined, bias: "none" };
      compare(build(x), `${label} ${S}x${T}x${H}`);
    }
  });
});

test("attention: NaN and Inf inputs behave as the JS kernel", { skip: skipNative }, () => {
  const cases: [string, (a: AttentionArgs) => void][] = [
    ["NaN query row", (a) => a.q.fill(Number.NaN, a.qLayout.offset, a.qLayout.offset + a.headSize)],
    ["NaN key", (a) => (a.k[a.kLayout.offset + 3 * a.kLayout.seqStride] = Number.NaN)],
    ["inf value", (a) => (a.v[a.vLayout.offset + 1] = Number.POSITIVE_INFINITY)],
    ["+inf query", (a) => (a.q[a.qLayout.offset + a.qLayout.seqStride] = Number.POSITIVE_INFINITY)],
    [
      "inf values on masked keys",
      (a) => {
        a.keyLengths = [5, 3];
        for (let j = 5; j < a.seqKV; j++)
          a.v[a.vLayout.offset + j * a.vLayout.seqStride] = Number.POSITIVE_INFINITY;
      },
    ],
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
  forEachConfig((_, label) => {
    for (const [name, edit] of cases) {
      const x = fc.sample(problemArb, { seed: 5, numRuns: 1 })[0]!;
      x.p = { ...x.p, batch: 2, kvNumHeads: 1, group: 2, seqQ: 7, seqKV: 70, headSize: 9, vHeadSize: 11 };
      x.p = { ...x.p, lengths: "none", causal: undefined, bias: "none", bsnh: [true, true, true, true] };
      const a = build(x);
      edit(a);
      compare(a, `${label} ${name}`);
    }
  });
});

test("attention: empty batch, zero-length sequences and 1-token problems", { skip: skipNative }, () => {
  const x = sample();
  x.p = { ...x.p, batch: 1, seqQ: 1, seqKV: 1, lengths: "none", causal: undefined, bias: "none" };
  compare(build(x), "1 token");
  // batch 0: no row is computed, so nothing is written (out starts as NaN and stays NaN, bit for bit); an output
  // of zero elements is accepted.
  const empty = build(x);
  const before = new Uint32Array(empty.out.slice().buffer);
  native!.attention({ ...empty, batch: 0 });
  assert.deepEqual(new Uint32Array(empty.out.buffer), before, "batch 0 wrote into out");
  const none = new Float32Array(0);
  native!.attention({ ...empty, batch: 0, out: none, outLayout: { ...empty.outLayout, offset: 0 } });
  // The packed op on an empty batch (B = 0, with S > 0 and S = 0): the reference's output is empty, and the
  // kernel, given empty inputs and spare NaN-filled output, writes nothing.
  const untouched = (out: Float32Array, what: string) =>
    assert.ok(
      out.every((v) => Number.isNaN(v)),
      `${what}: wrote into out`,
    );
  for (const [B, S] of [
    [0, 5],
    [0, 0],
  ] as const) {
    const qkv = packedProblem(B, S, 2, 8, 1);
    const want = qkvToContext(qkv, { numHeads: 2, mask: new Int32Array(0) });
    assert.deepEqual([...want.dims], [S, B, 16, 1, 1]);
    const out = new Float32Array(want.size + 8).fill(Number.NaN);
    native!.packedQkvAttention({
      qkv: qkv.data as Float32Array,
      out,
      numHeads: 2,
      headSize: 8,
      batch: B,
      seqLen: S,
      lengths: new Int32Array(0),
    });
    untouched(out, `B=0 S=${S}`);
  }
  // Var-seqlen with no tokens at all: every sequence empty (the reference needs at least one sequence).
  for (const cu of [Int32Array.of(0, 0), Int32Array.of(0, 0, 0)]) {
    const noTokens = new Tensor("float32", new Float32Array(0), [0, 48, 1, 1]);
    assert.deepEqual([...qkvToContext(noTokens, { numHeads: 2, cuSeqlens: cu }).dims], [0, 16, 1, 1]);
    const out = new Float32Array(8).fill(Number.NaN);
    native!.packedQkvAttention({ qkv: new Float32Array(0), out, numHeads: 2, headSize: 8, cuSeqlens: cu });
    untouched(out, `cu_seqlens [${cu}]`);
  }
  x.p = { ...x.p, batch: 3, seqQ: 9, seqKV: 9, lengths: "both" };
  x.keyLengths = [0, 9, 4];
  x.queryLengths = [0, 0, 9];
  compare(build(x), "zero lengths");
});

function packedProblem(B: number, S: number, N: number, H: number, seed: number) {
  return new Tensor("float32", rand(S * B * 3 * N * H, seed), [S, B, 3 * N * H, 1, 1]);
}

test("packed QKV: fixed length with lengths (zeros or computed padded rows) matches qkvToContext", {
  skip: skipNative,
}, () => {
  forEachConfig((nk, label) => {
    for (const [B, S, N, H] of [
      [1, 1, 1, 8],
      [3, 37, 2, 64],
      [8, 128, 12, 64],
    ] as const) {
      const qkv = packedProblem(B, S, N, H, B + S);
      const lengths = Int32Array.from({ length: B }, (_, b) => (b === 0 ? S : (b * 7) % (S + 1)));
      for (const computePaddedRows of [false, true]) {
        const want = qkvToContext(qkv, { numHeads: N, mask: lengths, computePaddedRows })
          .data as Float32Array;
        const out = new Float32Array(S * B * N * H).fill(Number.NaN);
        nk.packedQkvAttention({
          qkv: qkv.data as Float32Array,
          out,
          numHeads: N,
          headSize: H,
          batch: B,
          seqLen: S,
          lengths,
          computePaddedRows,
        });
        for (let i = 0; i < out.length; i++)
          assert.ok(
            Math.abs(out[i]! - want[i]!) <= 2e-5,
            `${label} B${B} S${S} [${i}] ${out[i]} vs ${want[i]}`,
          );
      }
    }
  });
});

test("packed QKV: var-seqlen (cu_seqlens, empty sequences included) matches qkvToContext", {
  skip: skipNative,
}, () => {
  forEachConfig((nk, label) => {
    const N = 3;
    const H = 32;
    const cu = Int32Array.of(0, 5, 5, 70, 71, 200);
    const T = cu[cu.length - 1]!;
    const qkv = new Tensor("float32", rand(T * 3 * N * H, 11), [T, 3 * N * H, 1, 1]);
    const want = qkvToContext(qkv, { numHeads: N, cuSeqlens: cu }).data as Float32Array;
    const out = new Float32Array(T * N * H).fill(Number.NaN);
    nk.packedQkvAttention({ qkv: qkv.data as Float32Array, out, numHeads: N, headSize: H, cuSeqlens: cu });
    for (let i = 0; i < out.length; i++)
      assert.ok(Math.abs(out[i]! - want[i]!) <= 2e-5, `${label} [${i}] ${out[i]} vs ${want[i]}`);
  });
});
