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
