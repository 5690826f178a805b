import assert from "node:assert/strict";
import { test } from "node:test";
import { Tensor } from "../src/ir/tensor.js";
import { maxAbs, randomTensor, referenceFixed, referenceVarlen, runSingle } from "./qkv-helpers.js";

const N = 2;
const H = 4;
const E = N * H;

test("mhafuse.QKVToContext with a lengths mask equals float64 attention; padded rows as TensorRT computes them", () => {
  const S = 5;
  const B = 3;
  const qkv = randomTensor("float32", [S, B, 3 * E, 1, 1], 11);
  const lengths = [5, 2, 0];
  const out = runSingle("QKVToContext", "mhafuse", { num_heads: N, hidden_size: E, has_mask: 1 }, [
    qkv,
    new Tensor("int32", lengths, [B]),
  ]);
  assert.deepEqual(out.dims, [S, B, E, 1, 1]);
  const want = referenceFixed(qkv.toFloat64(), S, B, N, H, lengths);
  assert.ok(maxAbs(out.data as Float32Array, want) <= 1e-5);
});

test("compute_padded_rows=0 writes zeros in padded query rows; the default (1) computes them", () => {
  const S = 4;
  const B = 2;
  const qkv = randomTensor("float32", [S, B, 3 * E, 1, 1], 12);
  const lengths = [4, 2];
  const mask = new Tensor("int32", lengths, [B]);
  const zeroed = runSingle("QKVToContext", "mhafuse", { num_heads: N, compute_padded_rows: 0 }, [qkv, mask]);
  assert.ok(
    maxAbs(zeroed.data as Float32Array, referenceFixed(qkv.toFloat64(), S, B, N, H, lengths, false)) <= 1e-5,
  );
  assert.ok((zeroed.data as Float32Array).subarray(3 * B * E + E, 3 * B * E + 2 * E).every((v) => v === 0));
  const computed = runSingle("QKVToContext", "mhafuse", { num_heads: N }, [qkv, mask]);
  assert.ok(
    maxAbs(computed.data as Float32Array, referenceFixed(qkv.toFloat64(), S, B, N, H, lengths)) <= 1e-5,
  );
  // Row s=3 of sequence 1 is padding, yet not zero.
  assert.ok((computed.data as Float32Array).subarray(3 * B * E + E, 3 * B * E + 2 * E).some((v) => v !== 0));
});

test("fallback_bias: a -1 length uses the additive bias over all S keys; other sequences keep their length", () => {
  const S = 3;
  const B = 2;
  const qkv = randomTensor("float32", [S, B, 3 * E, 1, 1], 13);
  // Sequence 0 masks key 1 through the bias (not a right-padding mask); sequence 1 has length 2.
  const bias = new Tensor("float32", [0, -1e9, 0, 0, 0, 0], [B, 1, 1, S]);
  const out = runSingle("QKVToContext", "mhafuse", { num_heads: N }, [
    qkv,
    new Tensor("int32", [-1, 2], [B]),
    bias,
  ]);
  // Reference for sequence 0: keys {0, 2} only, every row computed; sequence 1: the plain length-2 reference.
  const q = qkv.toFloat64();
  const at = (s: number, b: number, n: number, t: number, h: number) =>
    s * B * 3 * E + b * 3 * E + n * 3 * H + t * H + h;
  const got = out.data as Float32Array;
  for (let n = 0; n < N; n++)
    for (let i = 0; i < S; i++) {
      const keys = [0, 2];
      const sc = keys.map((j) => {
        let d = 0;
        for (let h = 0; h < H; h++) d += q[at(i, 0, n, 0, h)]! * q[at(j, 0, n, 1, h)]!;
        return d / Math.sqrt(H);
      });
      const m = Math.max(...sc);
      const z = sc.reduce((s, x) => s + Math.exp(x - m), 0);
      for (let h = 0; h < H; h++) {
        const v = keys.reduce((s, j, k) => s + (Math.exp(sc[k]! - m) / z) * q[at(j, 0, n, 2, h)]!, 0);
        assert.ok(Math.abs(got[i * B * E + n * H + h]! - v) <= 1e-5);
      }
    }
  const ref1 = referenceFixed(q, S, B, N, H, [0, 2]);
  for (let i = 0; i < S; i++)
    assert.ok(
      maxAbs(
        got.subarray(i * B * E + E, i * B * E + 2 * E),
        ref1.subarray(i * B * E + E, i * B * E + 2 * E),
      ) <= 1e-5,
    );
});

test("float16 in the graph: float16 out within 2e-3 of float64", () => {
  const S = 4;
  const B = 2;
  const q32 = randomTensor("float32", [S, B, 3 * E, 1, 1], 18);
  const half = new Tensor("float16", Array.from(q32.data as Float32Array), [S, B, 3 * E, 1, 1]);
  const out = runSingle("QKVToContext", "mhafuse", { num_heads: N, type_id: 1 }, [half]);
  assert.equal(out.type, "float16");
  // Reference from the float16 values themselves.
  const want = referenceFixed(Float64Array.from(half.toNumbers()), S, B, N, H);
  assert.ok(maxAbs(out.toNumbers(), want) <= 2e-3);
});

test("mhafuse.QKVToContext var_seqlen: qkv [T, 3E, 1, 1], dummy mask, cu_seqlens, dummy [max_seqlen]", () => {
  const cu = [0, 3, 3, 8];
  const qkv = randomTensor("float32", [8, 3 * E, 1, 1], 16);
  const out = runSingle("QKVToContext", "mhafuse", { num_heads: N, var_seqlen: 1 }, [
    qkv,
    undefined,
    new Tensor("int32", cu, [4]),
    new Tensor("float32", new Float32Array(5), [5]),
  ]);
  assert.deepEqual(out.dims, [8, E, 1, 1]);
  assert.ok(maxAbs(out.data as Float32Array, referenceVarlen(qkv.toFloat64(), cu, N, H)) <= 1e-5);
});
