import assert from "node:assert/strict";
import { test } from "node:test";
import * as ort from "onnxruntime-node";
import { formatAttentionTable } from "../src/cli/format.js";
import { runGraph } from "../src/engine/executor.js";
import { GraphBuilder } from "../src/ir/builder.js";
import type { Graph } from "../src/ir/graph.js";
import { Tensor } from "../src/ir/tensor.js";
import { loadModel, modelFromGraph, saveModel } from "../src/onnx/index.js";
import { type AttentionReport, optimizeGraph, summarizeReport } from "../src/passes/index.js";
import { toOnnxruntime } from "../src/passes/to-onnxruntime.js";
import { maxAbsDiff } from "./support/compare.js";
import { FIXTURES, fixtureCases } from "./support/fixtures.js";

// Attention already fused in the file (onnxruntime contrib ops, ONNX Attention-23, TensorRT's plugin node,
// mhafuse's own ops) is listed as blocks: kind, traits, mask kind, the op and the core it runs on.

const [B, S, N, H] = [2, 5, 2, 4];
const E = N * H;

function random(n: number, seed: number): number[] {
  let s = seed;
  return Array.from({ length: n }, () => {
    s = (s * 48271) % 2147483647;
    return (s / 2147483647 - 0.5) * 2;
  });
}

type Row = Pick<AttentionReport, "kind" | "traits" | "fused" | "origin" | "path" | "op" | "mask">;
const row = (r: AttentionReport): Row => ({
  kind: r.kind,
  traits: r.traits,
  fused: r.fused,
  origin: r.origin,
  path: r.path,
  op: r.op,
  mask: r.mask,
});

function only(graph: Graph): AttentionReport {
  const { report } = optimizeGraph(graph);
  assert.equal(report.length, 1, summarizeReport(report));
  return report[0]!;
}

test("com.microsoft Attention: causal with key lengths, reported and equal to onnxruntime-node", async () => {
  const b = new GraphBuilder({ opsets: { "": 17, "com.microsoft": 1 } });
  const x = b.input("x", "float32", [B, S, E]);
  const lengths = b.input("lengths", "int32", [B]);
  const w = b.init(new Tensor("float32", random(E * 3 * E, 7), [E, 3 * E]), "w");
  const bias = b.init(new Tensor("float32", random(3 * E, 8), [3 * E]), "b");
  b.output(
    b.op(
      "Attention",
      [x, w, bias, lengths],
      { num_heads: N, unidirectional: 1 },
      { domain: "com.microsoft", outputs: ["y"] },
    ),
  );
  const graph = b.build();
  assert.deepEqual(row(only(graph)), {
    kind: "causal",
    traits: [],
    fused: true,
    origin: "file",
    path: "attention",
    op: "com.microsoft.Attention",
    mask: "key-lengths",
  });
  const xs = random(B * S * E, 9);
  const got = runGraph(graph, {
    x: new Tensor("float32", xs, [B, S, E]),
    lengths: new Tensor("int32", [5, 3], [B]),
  }).get("y")!;
  const session = await ort.InferenceSession.create(saveModel(modelFromGraph(graph)));
  const want = await session.run({
    x: new ort.Tensor("float32", Float32Array.from(xs), [B, S, E]),
    lengths: new ort.Tensor("int32", Int32Array.from([5, 3]), [B]),
  });
  const ref = new Tensor("float32", want.y!.data as Float32Array, [B, S, E]);
  assert.ok(maxAbsDiff(got, ref) <= 1e-5, `max |diff| ${maxAbsDiff(got, ref)}`);
});

test("com.microsoft Attention with past (KV cache) is listed but not runnable", () => {
  const b = new GraphBuilder({ opsets: { "": 17, "com.microsoft": 1 } });
  const x = b.input("x", "float32", [B, 1, E]);
  const past = b.input("past", "float32", [2, B, N, 3, H]);
  const w = b.init(new Tensor("float32", random(E * 3 * E, 7), [E, 3 * E]));
  const bias = b.init(new Tensor("float32", random(3 * E, 8), [3 * E]));
  b.output(
    b.op("Attention", [x, w, bias, "", past], { num_heads: N }, { domain: "com.microsoft", outputs: ["y"] }),
  );
  const r = only(b.build());
  assert.equal(r.fused, false);
  assert.deepEqual(r.traits, ["kv-cache"]);
  assert.match(r.reason ?? "", /past \(KV cache\).*will not run/);
});

test("MultiHeadAttention: cross with a 2-D padding mask, and packed QKV self-attention", () => {
  const b = new GraphBuilder({ opsets: { "": 17, "com.microsoft": 1 } });
  const q = b.input("q", "float32", ["b", "s", E]);
  const k = b.input("k", "float32", ["b", "t", E]);
  const v = b.input("v", "float32", ["b", "t", E]);
  const mask = b.input("mask", "int32", ["b", "t"]);
  b.output(
    b.op(
      "MultiHeadAttention",
      [q, k, v, "", mask],
      { num_heads: N },
      { domain: "com.microsoft", outputs: ["y"] },
    ),
  );
  assert.deepEqual(row(only(b.build())), {
    kind: "cross",
    traits: ["padding-mask"],
    fused: true,
    origin: "file",
    path: "attention",
    op: "com.microsoft.MultiHeadAttention",
    mask: "padding",
  });

  const p = new GraphBuilder({ opsets: { "": 17, "com.microsoft": 1 } });
  const qkv = p.input("qkv", "float32", ["b", "s", N, 3, H]);
  p.output(p.op("MultiHeadAttention", [qkv], { num_heads: N }, { domain: "com.microsoft", outputs: ["y"] }));
  const r = only(p.build());
  assert.deepEqual([r.kind, r.traits, r.mask], ["self", ["packed-input"], "none"]);
});

test("GroupQueryAttention: causal GQA with KV cache, seqlens_k, rotary and a sliding window", () => {
  const b = new GraphBuilder({ opsets: { "": 17, "com.microsoft": 1 } });
  const q = b.input("q", "float32", [1, 1, 4 * H]);
  const k = b.input("k", "float32", [1, 1, 2 * H]);
  const v = b.input("v", "float32", [1, 1, 2 * H]);
  const pk = b.input("past_key", "float32", [1, 2, "p", H]);
  const pv = b.input("past_value", "float32", [1, 2, "p", H]);
  const seqlens = b.input("seqlens_k", "int32", [1]);
  const total = b.input("total", "int32", []);
  const cos = b.input("cos", "float32", ["m", H / 2]);
  const sin = b.input("sin", "float32", ["m", H / 2]);
  b.output(
    b.op(
      "GroupQueryAttention",
      [q, k, v, pk, pv, seqlens, total, cos, sin],
      { num_heads: 4, kv_num_heads: 2, do_rotary: 1, local_window_size: 8 },
      { domain: "com.microsoft", outputs: ["y", "present_key", "present_value"] },
    ),
  );
  const r = only(b.build());
  assert.deepEqual(row(r), {
    kind: "causal",
    traits: ["GQA", "kv-cache", "rotary", "sliding-window"],
    fused: true,
    origin: "file",
    path: "attention",
    op: "com.microsoft.GroupQueryAttention",
    mask: "seqlens-k",
  });
  assert.deepEqual([r.numHeads, r.kvNumHeads], [4, 2]);
});

test("ONNX Attention-23: boolean mask, GQA heads, past key/value", () => {
  const b = new GraphBuilder({ opset: 23 });
  const q = b.input("q", "float32", ["b", "s", 4 * H]);
  const k = b.input("k", "float32", ["b", "s", 2 * H]);
  const v = b.input("v", "float32", ["b", "s", 2 * H]);
  const mask = b.input("mask", "bool", ["s", "t"]);
  const pk = b.input("pk", "float32", ["b", 2, "p", H]);
  const pv = b.input("pv", "float32", ["b", 2, "p", H]);
  b.output(
    b.op(
      "Attention",
      [q, k, v, mask, pk, pv],
      { q_num_heads: 4, kv_num_heads: 2 },
      { outputs: ["y", "present_key", "present_value"] },
    ),
  );
  assert.deepEqual(row(only(b.build())), {
    kind: "self",
    traits: ["GQA", "kv-cache"],
    fused: true,
    origin: "file",
    path: "attention",
    op: "Attention",
    mask: "boolean",
  });
});

test("TensorRT CustomQKVToContextPluginDynamic: packed-QKV path with TensorRT's mask or cu_seqlens", () => {
  const fixed = new GraphBuilder({ opset: 17 });
  const qkv = fixed.input("qkv", "float32", [S, B, 3 * E, 1, 1]);
  const mask = fixed.input("mask", "int32", [B]);
  fixed.output(
    fixed.op(
      "CustomQKVToContextPluginDynamic",
      [qkv, mask],
      { type_id: 0, hidden_size: E, num_heads: N, has_mask: 1, plugin_version: "1" },
      { domain: "trt.plugins", outputs: ["y"] },
    ),
  );
  assert.deepEqual(row(only(fixed.build())), {
    kind: "self",
    traits: [],
    fused: true,
    origin: "file",
    path: "packed-qkv",
    op: "trt.plugins.CustomQKVToContextPluginDynamic",
    mask: "trt-mask",
  });

  const vs = new GraphBuilder({ opset: 17 });
  const packed = vs.input("qkv", "float32", ["t", 3 * E, 1, 1]);
  const dummy = vs.input("dummy", "int32", [B]);
  const cu = vs.input("cu", "int32", [B + 1]);
  const maxS = vs.input("max", "int32", [S]);
  vs.output(
    vs.op(
      "CustomQKVToContextPluginDynamic",
      [packed, dummy, cu, maxS],
      { type_id: 0, hidden_size: E, num_heads: N, has_mask: 1, var_seqlen: 1, plugin_version: "2" },
      { outputs: ["y"] },
    ),
  );
  assert.equal(only(vs.build()).mask, "cu-seqlens");
});

test("com.microsoft PackedAttention is listed as a block the engine cannot run", () => {
  const b = new GraphBuilder({ opsets: { "": 17, "com.microsoft": 1 } });
  const x = b.input("x", "float32", ["t", E]);
  const w = b.init(new Tensor("float32", random(E * 3 * E, 1), [E, 3 * E]));
  const bias = b.init(new Tensor("float32", random(3 * E, 2), [3 * E]));
  const tokenOffset = b.input("token_offset", "int32", [B, S]);
  const cu = b.input("cu", "int32", [B + 1]);
  b.output(
    b.op(
      "PackedAttention",
      [x, w, bias, tokenOffset, cu],
      { num_heads: N },
      { domain: "com.microsoft", outputs: ["y"] },
    ),
  );
  const r = only(b.build());
  assert.equal(r.fused, false);
  assert.match(r.reason ?? "", /PackedAttention .*no kernel/);
});

test("bart_eager optimised and saved: its mhafuse ops are reported as the same blocks and still match", async () => {
  const model = await loadModel(`${FIXTURES}onnx/bart_eager.onnx`);
  const first = optimizeGraph(model.graph, { level: "all" });
  const saved = await loadModel(saveModel(modelFromGraph(first.graph)));
  const second = optimizeGraph(saved.graph, { level: "all" });
  const kinds = (r: readonly AttentionReport[]) => r.map((x) => `${x.kind}:${x.path}:${x.origin}`).sort();
  assert.deepEqual(
    kinds(second.report),
    kinds(first.report.map((x) => ({ ...x, origin: "file" }))),
    summarizeReport(second.report),
  );
  assert.ok(second.report.every((x) => x.fused && x.origin === "file"));
  const table = formatAttentionTable(second.report);
  assert.match(table, /6 of 6 attention blocks fused \(6 already fused in the file\)/);
  assert.match(table, /mhafuse\.QKVToContext/);
  for (const c of fixtureCases("bart_eager")) {
    const values = runGraph(second.graph, c.inputs);
    for (const [name, want] of Object.entries(c.outputs)) {
      const d = maxAbsDiff(values.get(name)!, want);
      assert.ok(d <= 1e-4, `${name}: max |diff| ${d}`);
    }
  }
});

for (const name of ["bart_eager", "qwen3_sdpa", "gpt_neox_sdpa"]) {
  test(`${name} --target onnxruntime: its contrib attention ops are reported with the fusion's kinds and masks`, async () => {
    const model = await loadModel(`${FIXTURES}onnx/${name}.onnx`);
    const first = optimizeGraph(model.graph, { level: "all" });
    const lowered = toOnnxruntime(first.graph).graph;
    const saved = await loadModel(saveModel(modelFromGraph(lowered)));
    const second = optimizeGraph(saved.graph, { level: "all" });
    // Masks arrive as attention_bias there; probing them recovers causal and padding.
    const kinds = (r: readonly AttentionReport[]) => r.map((x) => `${x.kind}:${x.mask}`).sort();
    assert.deepEqual(kinds(second.report), kinds(first.report), summarizeReport(second.report));
    assert.ok(
      second.report.every((x) => x.fused && x.origin === "file" && x.op?.startsWith("com.microsoft.")),
    );
    for (const c of fixtureCases(name)) {
      const values = runGraph(second.graph, c.inputs);
      for (const [out, want] of Object.entries(c.outputs)) {
        const d = maxAbsDiff(values.get(out)!, want);
        assert.ok(d <= 1e-4, `${out}: max |diff| ${d}`);
      }
    }
  });
}

test("fused subgraph blocks say which op runs them, their mask and why not the packed op", async () => {
  const model = await loadModel(`${FIXTURES}onnx/bart_sdpa.onnx`);
  const { report } = optimizeGraph(model.graph, { level: "all" });
  const packed = report.filter((r) => r.path === "packed-qkv");
  assert.equal(packed.length, 2);
  for (const r of packed)
    assert.deepEqual([r.op, r.mask, r.origin], ["mhafuse.QKVToContext", "padding", "subgraph"]);
  const causal = report.filter((r) => r.kind === "causal");
  assert.equal(causal.length, 2);
  for (const r of causal) {
    assert.equal(r.op, "mhafuse.Attention");
    assert.match(r.why ?? "", /causal: the packed op .* has no causal mask/);
  }
  for (const r of report.filter((x) => x.kind === "cross")) assert.match(r.why ?? "", /different inputs/);
});

test("llama_past optimised, saved, and lowered for onnxruntime: the blocks keep their rotary note and KV cache", async () => {
  const model = await loadModel(`${FIXTURES}onnx/llama_past.onnx`);
  const first = optimizeGraph(model.graph, { level: "all" });
  const files = {
    mhafuse: await loadModel(saveModel(modelFromGraph(first.graph))),
    onnxruntime: await loadModel(saveModel(modelFromGraph(toOnnxruntime(first.graph).graph))),
  };
  for (const [target, saved] of Object.entries(files)) {
    const { report } = optimizeGraph(saved.graph, { level: "all" });
    const summary = `${target}: ${summarizeReport(report)}`;
    assert.equal(report.length, 2, summary);
    for (const r of report) {
      assert.deepEqual([r.kind, r.mask, r.origin, r.fused], ["causal", "padding", "file", true], summary);
      assert.ok(r.traits.includes("rotary") && r.traits.includes("kv-cache"), summary);
      assert.equal(r.rotary, "RotaryEmbedding nodes on Q, K in the file", summary);
    }
    assert.match(formatAttentionTable(report), /rotary RotaryEmbedding nodes on Q, K in the file/);
  }
});
