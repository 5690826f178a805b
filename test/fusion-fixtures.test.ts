import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { runGraph } from "../src/engine/executor.js";
import { verifyFusion } from "../src/engine/verify.js";
import type { Tensor } from "../src/ir/tensor.js";
import { loadModel, tensorFromJson } from "../src/onnx/index.js";
import { optimizeGraph, summarizeReport } from "../src/passes/index.js";
import { maxAbsDiff } from "./support/compare.js";

// The real Hugging Face exports: every attention block must be found and fused, encoder self-attention
// through the packed-QKV path, and the fused graphs must still reproduce onnxruntime's reference outputs.

const fixtures = fileURLToPath(new URL("../../shared/fixtures/onnx/", import.meta.url));

interface JsonTensor {
  dtype: string;
  shape: number[];
  data: string;
}
interface IoCase {
  inputs: Record<string, JsonTensor>;
  outputs: Record<string, JsonTensor>;
}

function cases(name: string): IoCase[] {
  return (JSON.parse(readFileSync(`${fixtures}${name}.io.json`, "utf8")) as { cases: IoCase[] }).cases;
}

function decode(record: Record<string, JsonTensor>): Record<string, Tensor> {
  return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, tensorFromJson(v as never)]));
}

const expected: Record<string, { kind: string; path: string }[]> = {
  bert_eager: Array(2).fill({ kind: "self", path: "packed-qkv" }),
  bert_sdpa: Array(2).fill({ kind: "self", path: "packed-qkv" }),
  distilbert_eager: Array(2).fill({ kind: "self", path: "packed-qkv" }),
  bart_eager: [
    { kind: "self", path: "packed-qkv" },
    { kind: "self", path: "packed-qkv" },
    { kind: "causal", path: "attention" },
    { kind: "cross", path: "attention" },
    { kind: "causal", path: "attention" },
    { kind: "cross", path: "attention" },
  ],
  bart_sdpa: [
    { kind: "self", path: "packed-qkv" },
    { kind: "self", path: "packed-qkv" },
    { kind: "causal", path: "attention" },
    { kind: "cross", path: "attention" },
    { kind: "causal", path: "attention" },
    { kind: "cross", path: "attention" },
  ],
  bert_ort_fused: Array(2).fill({ kind: "self", path: "packed-qkv" }),
};

for (const [name, blocks] of Object.entries(expected)) {
  test(`${name}: every attention block fused, outputs match the references`, async () => {
    const model = await loadModel(`${fixtures}${name}.onnx`);
    const { graph, report } = optimizeGraph(model.graph, { level: "all" });
    const summary = summarizeReport(report);
    assert.deepEqual(
      report.map((b) => ({ kind: b.kind, path: b.path })),
      blocks,
      summary,
    );
    assert.ok(
      report.every((b) => b.fused),
      summary,
    );
    assert.ok(!graph.nodes.some((n) => n.opType === "Softmax"), "no Softmax may remain");
    for (const c of cases(name)) {
      const feeds = decode(c.inputs);
      const values = runGraph(graph, feeds);
      for (const [out, ref] of Object.entries(decode(c.outputs))) {
        const got = values.get(out);
        assert.ok(got, `output ${out} missing`);
        const d = maxAbsDiff(got, ref);
        assert.ok(d <= 1e-4, `${name} ${out}: max |diff| ${d}`);
      }
    }
  });
}

test("verify mode compares every fused block with the unfused graph", async () => {
  const model = await loadModel(`${fixtures}bart_eager.onnx`);
  const { graph, report } = optimizeGraph(model.graph);
  const feeds = decode(cases("bart_eager")[0]!.inputs);
  const result = verifyFusion(model.graph, graph, report, feeds, { tolerance: 1e-4 });
  assert.equal(result.blocks.length, 6);
  assert.ok(result.ok);
  for (const b of result.blocks) assert.ok(b.maxAbsDiff <= 1e-4, `${b.id}: ${b.maxAbsDiff}`);
  assert.ok(result.outputs.every((o) => o.maxAbsDiff <= 1e-4));
});

// The decoder families: every block fused into mhafuse.Attention with its rotary embedding folded into one
// com.microsoft RotaryEmbedding node on Q and one on K (full rotary, per-head RMSNorm before it, partial
// rotary on 8 of 16), llama_past's KV cache taken into the op; outputs equal onnxruntime's.
// Phi-3's qkv_proj (a Q|K|V split) and GPT-NeoX's head-interleaved projection are reported too: causal, they
// take the general op, and `why` says so next to the rotary note.
const decoders: Record<string, { kind: string; rotary: string; traits: string[]; why: RegExp }> = {
  phi3_eager: {
    kind: "causal",
    rotary: "Q, K, rotary dim 16 of 16",
    traits: ["padding-mask", "rotary", "fused-qkv"],
    why: /^not the packed op: causal: .*no causal mask .*Q\|K\|V split projection/,
  },
  qwen3_sdpa: {
    kind: "causal",
    rotary: "Q, K, rotary dim 16 of 16",
    traits: ["GQA", "padding-mask", "rotary"],
    why: /^not the packed op: packed QKV needs equal Q\/K\/V head counts/,
  },
  gpt_neox_sdpa: {
    kind: "causal",
    rotary: "Q, K, rotary dim 8 of 16",
    traits: ["padding-mask", "rotary", "interleaved-qkv"],
    why: /^not the packed op: causal: .*no causal mask .*head-interleaved \[N,3,H\], the packed op's layout/,
  },
  llama_past: {
    // The mask over past + current keys is recognised as causal + padding (probed with total = past + seq).
    kind: "causal",
    rotary: "Q, K, rotary dim 16 of 16",
    traits: ["GQA", "padding-mask", "rotary", "kv-cache"],
    why: /^not the packed op: a KV cache \(past key\/value\) needs the general attention op/,
  },
};

for (const [name, want] of Object.entries(decoders)) {
  test(`${name}: every block fused with its rotary folded, outputs match onnxruntime`, async () => {
    const model = await loadModel(`${fixtures}${name}.onnx`);
    const { graph, report } = optimizeGraph(model.graph, { level: "all" });
    const summary = summarizeReport(report);
    assert.equal(report.length, 2, summary);
    for (const b of report) {
      assert.ok(b.fused && b.path === "attention", summary);
      assert.equal(b.kind, want.kind, summary);
      assert.deepEqual(b.traits, want.traits, summary);
      assert.equal(b.rotary, `folded into com.microsoft.RotaryEmbedding on ${want.rotary}`, summary);
      assert.deepEqual([b.op, b.mask, b.origin], ["mhafuse.Attention", "padding", "subgraph"], summary);
      assert.match(b.why ?? "", want.why, summary);
    }
    const ops = graph.nodes.map((n) => `${n.domain ? `${n.domain}.` : ""}${n.opType}`);
    const count = (op: string) => ops.filter((o) => o === op).length;
    assert.equal(count("com.microsoft.RotaryEmbedding"), 4, "one rotary node for Q and one for K per layer");
    assert.equal(count("Neg"), 0, "no rotate_half left");
    assert.equal(count("Softmax"), 0);
    for (const c of cases(name)) {
      const values = runGraph(graph, decode(c.inputs));
      for (const [out, ref] of Object.entries(decode(c.outputs))) {
        const d = maxAbsDiff(values.get(out)!, ref);
        assert.ok(d <= 1e-4, `${name} ${out}: max |diff| ${d}`);
      }
    }
  });
}
