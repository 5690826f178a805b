import assert from "node:assert/strict";
import { test } from "node:test";
import { runGraph } from "../src/engine/executor.js";
import { GraphBuilder } from "../src/ir/builder.js";
import { Tensor } from "../src/ir/tensor.js";
import { optimizeGraph } from "../src/passes/index.js";

// Attention that is already fused in the model (com.microsoft MultiHeadAttention, ONNX Attention-23) is
// reported as a fused block and runs on the engine's attention core; numbers are checked against a
// float64 scaled-dot-product reference written here.

function random(n: number, seed: number): number[] {
  let s = seed;
  return Array.from({ length: n }, () => {
    s = (s * 48271) % 2147483647;
    return s / 2147483647 - 0.5;
  });
}

/** float64 attention on [B,S,N·H] tensors; causal aligned bottom-right (Sq = Skv here). */
function reference(
  q: number[],
  k: number[],
  v: number[],
  B: number,
  Sq: number,
  Skv: number,
  N: number,
  H: number,
  causal: boolean,
) {
  const out = new Float64Array(B * Sq * N * H);
  const E = N * H;
  for (let b = 0; b < B; b++)
    for (let n = 0; n < N; n++)
      for (let i = 0; i < Sq; i++) {
        const scores: number[] = [];
        for (let j = 0; j < Skv; j++) {
          let s = 0;
          for (let h = 0; h < H; h++)
            s += q[(b * Sq + i) * E + n * H + h]! * k[(b * Skv + j) * E + n * H + h]!;
          scores.push(causal && j > i + (Skv - Sq) ? Number.NEGATIVE_INFINITY : s / Math.sqrt(H));
        }
        const max = Math.max(...scores);
        const w = scores.map((s) => Math.exp(s - max));
        const sum = w.reduce((a, c) => a + c, 0);
        for (let h = 0; h < H; h++) {
          let acc = 0;
          for (let j = 0; j < Skv; j++) acc += (w[j]! / sum) * v[(b * Skv + j) * E + n * H + h]!;
          out[(b * Sq + i) * E + n * H + h] = acc;
        }
      }
  return out;
}

const [B, S, Skv, N, H] = [2, 3, 5, 2, 4];
const E = N * H;

test("com.microsoft MultiHeadAttention (cross) is reported fused and matches float64 attention", () => {
  const b = new GraphBuilder({ opsets: { "com.microsoft": 1 } });
  const q = b.input("q", "float32", ["b", "s", E]);
  const k = b.input("k", "float32", ["b", "t", E]);
  const v = b.input("v", "float32", ["b", "t", E]);
  b.output(
    b.op("MultiHeadAttention", [q, k, v], { num_heads: N }, { domain: "com.microsoft", outputs: ["y"] }),
  );
  const data = { q: random(B * S * E, 1), k: random(B * Skv * E, 2), v: random(B * Skv * E, 3) };
  const feeds = {
    q: new Tensor("float32", data.q, [B, S, E]),
    k: new Tensor("float32", data.k, [B, Skv, E]),
    v: new Tensor("float32", data.v, [B, Skv, E]),
  };
  const { graph, report } = optimizeGraph(b.build());
  assert.deepEqual(
    report.map((r) => [r.kind, r.fused, r.path, r.numHeads]),
    [["cross", true, "attention", N]],
  );
  const got = runGraph(graph, feeds).get("y")!.toFloat64();
  const want = reference(data.q, data.k, data.v, B, S, Skv, N, H, false);
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i]! - want[i]!) < 1e-5, `element ${i}`);
});

test("ONNX Attention-23 with is_causal is reported as a fused causal block and matches", () => {
  const b = new GraphBuilder({ opset: 23 });
  const q = b.input("q", "float32", ["b", "s", E]);
  const k = b.input("k", "float32", ["b", "s", E]);
  const v = b.input("v", "float32", ["b", "s", E]);
  b.output(
    b.op("Attention", [q, k, v], { q_num_heads: N, kv_num_heads: N, is_causal: 1 }, { outputs: ["y"] }),
  );
  const data = { q: random(B * S * E, 4), k: random(B * S * E, 5), v: random(B * S * E, 6) };
  const feeds = {
    q: new Tensor("float32", data.q, [B, S, E]),
    k: new Tensor("float32", data.k, [B, S, E]),
    v: new Tensor("float32", data.v, [B, S, E]),
  };
  const { graph, report } = optimizeGraph(b.build());
  assert.deepEqual(
    report.map((r) => [r.kind, r.fused]),
    [["causal", true]],
  );
  const got = runGraph(graph, feeds).get("y")!.toFloat64();
  const want = reference(data.q, data.k, data.v, B, S, S, N, H, true);
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i]! - want[i]!) < 1e-5, `element ${i}`);
});
