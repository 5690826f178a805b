import assert from "node:assert/strict";
import { test } from "node:test";
import { encodePackedMask } from "../src/attention/plugin-mask.js";
import { runGraph } from "../src/engine/executor.js";
import { GraphBuilder } from "../src/ir/builder.js";
import { Tensor } from "../src/ir/tensor.js";
import { maxAbs, randomTensor, referenceFixed, referenceVarlen } from "./qkv-helpers.js";

const N = 2;
const H = 4;
const E = N * H;

function runSingle(
  opType: string,
  domain: string,
  attrs: Record<string, number | string>,
  inputs: (Tensor | undefined)[],
): Tensor {
  const b = new GraphBuilder({ opsets: domain ? { [domain]: 1 } : {} });
  const names = inputs.map((t, i) => {
    if (!t) return "";
    return b.input(`in${i}`, t.type, [...t.dims]);
  });
  const out = b.op(opType, names, attrs, { domain });
  b.output(out);
  const feeds = Object.fromEntries(inputs.flatMap((t, i) => (t ? [[`in${i}`, t]] : [])));
  return runGraph(b.build(), feeds).get(out)!;
}

test("mhafuse.QKVToContext with a lengths mask equals float64 attention; padded rows are zeros", () => {
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

test("compute_padded_rows=1 computes padded query rows over the valid keys (PyTorch eager)", () => {
  const S = 4;
  const B = 2;
  const qkv = randomTensor("float32", [S, B, 3 * E, 1, 1], 12);
  const lengths = [4, 2];
  const out = runSingle("QKVToContext", "mhafuse", { num_heads: N, compute_padded_rows: 1 }, [
    qkv,
    new Tensor("int32", lengths, [B]),
  ]);
  const want = referenceFixed(qkv.toFloat64(), S, B, N, H, lengths, true);
  assert.ok(maxAbs(out.data as Float32Array, want) <= 1e-5);
  // Row s=3 of sequence 1 is padding, yet not zero.
  assert.ok((out.data as Float32Array).subarray(3 * B * E + E, 3 * B * E + 2 * E).some((v) => v !== 0));
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

test("CustomQKVToContextPluginDynamic (domain '', plugin_version '2') with int32 [B] mask", () => {
  const S = 6;
  const B = 2;
  const qkv = randomTensor("float32", [S, B, 3 * E, 1, 1], 14);
  const lengths = [3, 6];
  const out = runSingle(
    "CustomQKVToContextPluginDynamic",
    "",
    { type_id: 0, hidden_size: E, num_heads: N, has_mask: 1, plugin_version: "2", plugin_namespace: "" },
    [qkv, new Tensor("int32", lengths, [B])],
  );
  assert.ok(maxAbs(out.data as Float32Array, referenceFixed(qkv.toFloat64(), S, B, N, H, lengths)) <= 1e-5);
});

test("plugin v1 with embLayerNorm's packed maskIdx [B, packSize] at S = 64", () => {
  const S = 64;
  const B = 2;
  const qkv = randomTensor("float32", [S, B, 3 * E, 1, 1], 15);
  const lengths = [37, 64];
  const packed = encodePackedMask(lengths, S);
  assert.equal(packed.length, B * 256); // xmmas_m 2 × threads_per_cta 128
  const out = runSingle(
    "CustomQKVToContextPluginDynamic",
    "trt.plugins",
    { type_id: 0, hidden_size: E, num_heads: N, has_mask: 1, plugin_version: "1" },
    [qkv, new Tensor("int32", packed, [B, 256])],
  );
  assert.ok(maxAbs(out.data as Float32Array, referenceFixed(qkv.toFloat64(), S, B, N, H, lengths)) <= 1e-5);
});

test("plugin var_seqlen: qkv [T, 3E, 1, 1], dummy mask, cu_seqlens, dummy [max_seqlen]", () => {
  const cu = [0, 3, 3, 8];
  const T = 8;
  const qkv = randomTensor("float32", [T, 3 * E, 1, 1], 16);
  const out = runSingle(
    "CustomQKVToContextPluginDynamic",
    "trt.plugins",
    { type_id: 0, hidden_size: E, num_heads: N, has_mask: 1, var_seqlen: 1, plugin_version: "2" },
    [
      qkv,
      new Tensor("int32", [0, 0, 0], [3]),
      new Tensor("int32", cu, [4]),
      new Tensor("float32", new Float32Array(5), [5]),
    ],
  );
  assert.deepEqual(out.dims, [T, E, 1, 1]);
  assert.ok(maxAbs(out.data as Float32Array, referenceVarlen(qkv.toFloat64(), cu, N, H)) <= 1e-5);
});

test("plugin_version '3' implies var-seqlen", () => {
  const cu = [0, 2, 5];
  const qkv = randomTensor("float32", [5, 3 * E, 1, 1], 17);
  const out = runSingle(
    "CustomQKVToContextPluginDynamic",
    "",
    { hidden_size: E, num_heads: N, plugin_version: "3" },
    [qkv, undefined, new Tensor("int32", cu, [3]), new Tensor("float32", new Float32Array(3), [3])],
  );
  assert.ok(maxAbs(out.data as Float32Array, referenceVarlen(qkv.toFloat64(), cu, N, H)) <= 1e-5);
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
