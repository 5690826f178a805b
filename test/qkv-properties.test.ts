import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { qkvToContext } from "../src/engine/qkv.js";
import { Tensor } from "../src/ir/tensor.js";
import { concatToInterleaved, packQkvWeights, unpackQkvWeights } from "../src/packing/index.js";
import { maxAbs, randomTensor, referenceFixed, referenceVarlen } from "./qkv-helpers.js";

const dimsArb = fc.record({
  S: fc.integer({ min: 1, max: 9 }),
  B: fc.integer({ min: 1, max: 3 }),
  N: fc.integer({ min: 1, max: 3 }),
  H: fc.integer({ min: 1, max: 8 }),
  seed: fc.integer({ min: 1, max: 2 ** 30 }),
});

test("fixed length: random S, B, N, H and masks (len 0, 1 and S included) match float64 attention", () => {
  fc.assert(
    fc.property(
      dimsArb.chain((d) =>
        fc.record({
          d: fc.constant(d),
          lengths: fc.option(fc.array(fc.integer({ min: 0, max: d.S }), { minLength: d.B, maxLength: d.B }), {
            nil: undefined,
          }),
          computePaddedRows: fc.boolean(),
        }),
      ),
      ({ d, lengths, computePaddedRows }) => {
        const E = d.N * d.H;
        const qkv = randomTensor("float32", [d.S, d.B, 3 * E, 1, 1], d.seed, 2);
        const got = qkvToContext(qkv, { numHeads: d.N, mask: lengths, computePaddedRows });
        const want = referenceFixed(qkv.toFloat64(), d.S, d.B, d.N, d.H, lengths, computePaddedRows);
        assert.ok(maxAbs(got.data as Float32Array, want) <= 1e-5);
      },
    ),
    { numRuns: 200, seed: 7001 },
  );
});

test("var-seqlen: random cu_seqlens (empty sequences included) match float64 attention on every row", () => {
  fc.assert(
    fc.property(
      dimsArb,
      fc.array(fc.integer({ min: 0, max: 7 }), { minLength: 1, maxLength: 4 }),
      (d, lens) => {
        const cu = [0];
        for (const l of lens) cu.push(cu[cu.length - 1]! + l);
        const T = cu[cu.length - 1]!;
        const E = d.N * d.H;
        const qkv = randomTensor("float32", [T, 3 * E, 1, 1], d.seed, 2);
        const got = qkvToContext(qkv, { numHeads: d.N, cuSeqlens: cu });
        assert.deepEqual(got.dims, [T, E, 1, 1]);
        assert.ok(maxAbs(got.data as Float32Array, referenceVarlen(qkv.toFloat64(), cu, d.N, d.H)) <= 1e-5);
      },
    ),
    { numRuns: 200, seed: 7002 },
  );
});

test("float16: output float16 within 2e-3 of float64 on the float16 inputs", () => {
  fc.assert(
    fc.property(dimsArb, (d) => {
      const E = d.N * d.H;
      const qkv = randomTensor("float16", [d.S, d.B, 3 * E, 1, 1], d.seed);
      const got = qkvToContext(qkv, { numHeads: d.N });
      assert.equal(got.type, "float16");
      assert.ok(maxAbs(got.toNumbers(), referenceFixed(qkv.toFloat64(), d.S, d.B, d.N, d.H)) <= 2e-3);
    }),
    { numRuns: 60, seed: 7003 },
  );
});

test("large problem on worker threads (parallel path inside the op) matches float64", () => {
  const S = 96;
  const B = 2;
  const N = 4;
  const H = 32;
  const qkv = randomTensor("float32", [S, B, 3 * N * H, 1, 1], 99);
  const lengths = [96, 50];
  const got = qkvToContext(qkv, { numHeads: N, mask: lengths, parallel: { mode: "always", threads: 2 } });
  assert.ok(maxAbs(got.data as Float32Array, referenceFixed(qkv.toFloat64(), S, B, N, H, lengths)) <= 1e-5);
});

const packArb = fc.record({
  N: fc.integer({ min: 1, max: 4 }),
  H: fc.integer({ min: 1, max: 5 }),
  Ein: fc.integer({ min: 1, max: 9 }),
  seed: fc.integer({ min: 1, max: 2 ** 30 }),
});

test("pack → unpack is the identity (weights and biases)", () => {
  fc.assert(
    fc.property(packArb, ({ N, H, Ein, seed }) => {
      const E = N * H;
      const w = {
        wq: randomTensor("float32", [E, Ein], seed),
        wk: randomTensor("float32", [E, Ein], seed + 1),
        wv: randomTensor("float32", [E, Ein], seed + 2),
        bq: randomTensor("float32", [E], seed + 3),
        bk: randomTensor("float32", [E], seed + 4),
        bv: randomTensor("float32", [E], seed + 5),
      };
      const back = unpackQkvWeights(packQkvWeights(w, { numHeads: N }), { numHeads: N });
      for (const k of ["wq", "wk", "wv", "bq", "bk", "bv"] as const) {
        assert.deepEqual(back[k].dims, w[k].dims);
        assert.deepEqual(Array.from(back[k].data as Float32Array), Array.from(w[k].data as Float32Array));
      }
    }),
    { seed: 7101 },
  );
});

test("packed layout formula: packed[e_in, n, t, h] = W_t[n·H + h, e_in] (hand-checked 2 heads of 1)", () => {
  // E = 2, N = 2, H = 1, E_in = 1: columns are [q0, k0, v0, q1, k1, v1].
  const col = (a: number, b: number) => new Tensor("float32", [a, b], [2, 1]);
  const { weight, bias } = packQkvWeights(
    { wq: col(1, 2), wk: col(3, 4), wv: col(5, 6), bq: new Tensor("float32", [10, 20], [2]) },
    { numHeads: 2 },
  );
  assert.deepEqual(Array.from(weight.data as Float32Array), [1, 3, 5, 2, 4, 6]);
  assert.deepEqual(Array.from(bias.data as Float32Array), [10, 0, 0, 20, 0, 0]);
});

test("concatToInterleaved turns [Wq^T | Wk^T | Wv^T] and [bq | bk | bv] into the packed layout", () => {
  fc.assert(
    fc.property(packArb, ({ N, H, Ein, seed }) => {
      const E = N * H;
      const w = {
        wq: randomTensor("float32", [E, Ein], seed),
        wk: randomTensor("float32", [E, Ein], seed + 1),
        wv: randomTensor("float32", [E, Ein], seed + 2),
        bq: randomTensor("float32", [E], seed + 3),
        bk: randomTensor("float32", [E], seed + 4),
        bv: randomTensor("float32", [E], seed + 5),
      };
      // The common mistake: plain concatenation of the transposed weights.
      const concat = new Float32Array(Ein * 3 * E);
      [w.wq, w.wk, w.wv].forEach((t, k) => {
        for (let o = 0; o < E; o++)
          for (let i = 0; i < Ein; i++)
            concat[i * 3 * E + k * E + o] = (t.data as Float32Array)[o * Ein + i]!;
      });
      const biasConcat = new Float32Array([
        ...(w.bq.data as Float32Array),
        ...(w.bk.data as Float32Array),
        ...(w.bv.data as Float32Array),
      ]);
      const packed = packQkvWeights(w, { numHeads: N });
      const fixed = concatToInterleaved(new Tensor("float32", concat, [Ein, 3 * E]), { numHeads: N });
      assert.deepEqual(
        Array.from(fixed.data as Float32Array),
        Array.from(packed.weight.data as Float32Array),
      );
      const fixedBias = concatToInterleaved(new Tensor("float32", biasConcat, [3 * E]), { numHeads: N });
      assert.deepEqual(
        Array.from(fixedBias.data as Float32Array),
        Array.from(packed.bias.data as Float32Array),
      );
    }),
    { seed: 7102 },
  );
});
