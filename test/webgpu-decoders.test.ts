/**
 * The decoder fixtures (rotary, GQA, causal, a KV-cache step) fused and run on the webgpu backend: outputs
 * match onnxruntime's within 1e-4, no node falls back to the CPU, and every fused attention node ran on the
 * GPU flash kernel (not on the host because an upstream op left its inputs there), as did every
 * com.microsoft.RotaryEmbedding the fusion folded the rotary into (llama_past: the KV cache appended inside
 * mhafuse.Attention on the device, present_key/present_value fetched).
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { WebGpuBackend } from "../src/backends/webgpu/backend.js";
import type { WebGpuPreparedGraph } from "../src/backends/webgpu/graph/prepared-graph.js";
import { planGraph } from "../src/engine/executor.js";
import { InferenceSession } from "../src/engine/session.js";
import type { Tensor } from "../src/ir/tensor.js";
import { loadModel } from "../src/onnx/index.js";
import { optimizeGraph } from "../src/passes/index.js";
import { maxAbsDiff } from "./support/compare.js";
import { FIXTURES, fixtureCases } from "./support/fixtures.js";
import { gpuContext, llamaPastFeeds } from "./webgpu-helpers.js";

const backend = new WebGpuBackend();
after(() => backend.dispose());

for (const name of ["phi3_eager", "qwen3_sdpa", "gpt_neox_sdpa", "llama_past"]) {
  test(`webgpu backend: ${name} fused matches onnxruntime, attention on the GPU, no fallback`, async (t) => {
    const ctx = await gpuContext();
    if (typeof ctx === "string") return t.skip(ctx);
    const model = await loadModel(`${FIXTURES}onnx/${name}.onnx`);
    const { graph } = optimizeGraph(model.graph, { level: "all" });
    const attention = graph.nodes.filter((n) => n.domain === "mhafuse" && n.opType === "Attention");
    assert.ok(attention.length > 0, `${name}: fusion produced no mhafuse.Attention`);
    const rotary = graph.nodes.filter((n) => n.domain === "com.microsoft" && n.opType === "RotaryEmbedding");
    assert.ok(rotary.length > 0, `${name}: fusion folded no rotary into RotaryEmbedding`);
    const prepared = (await backend.prepare(graph, planGraph(graph))) as WebGpuPreparedGraph;
    for (const c of fixtureCases(name)) {
      const got = await prepared.run(c.inputs, Object.keys(c.outputs));
      for (const [out, ref] of Object.entries(c.outputs)) {
        const d = maxAbsDiff(got[out]!, ref);
        assert.ok(d <= 1e-4, `${name} ${out}: max |diff| ${d}`);
      }
    }
    assert.deepEqual(backend.fallbacks(), []);
    for (const n of [...attention, ...rotary])
      assert.ok(prepared.onDevice.has(n.name), `${n.name} did not run on the GPU`);
  });
}

test("webgpu provider: InferenceSession runs qwen3_sdpa (GQA, causal) with no CPU fallback", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  const session = await InferenceSession.create(`${FIXTURES}onnx/qwen3_sdpa.onnx`, {
    executionProviders: ["webgpu"],
  });
  try {
    for (const c of fixtureCases("qwen3_sdpa")) {
      const got = await session.run(c.inputs);
      for (const [out, ref] of Object.entries(c.outputs)) assert.ok(maxAbsDiff(got[out]!, ref) <= 1e-4, out);
    }
    assert.deepEqual(session.fallbacks(), []);
  } finally {
    await session.release();
  }
});

test("webgpu provider: llama_past decoding loop (prefill, then steps feeding present → past) equals the CPU, no fallback", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  const model = `${FIXTURES}onnx/llama_past.onnx`;
  const gpu = await InferenceSession.create(model, { executionProviders: ["webgpu"] });
  const cpu = await InferenceSession.create(model);
  const feeds = llamaPastFeeds;
  try {
    const prompt = [5, 17, 42, 8, 99, 3];
    let [pastG, pastC]: (Record<string, Tensor> | undefined)[] = [undefined, undefined];
    let next = prompt;
    for (let step = 0; step <= 6; step++) {
      const total = prompt.length + step;
      const g = await gpu.run(feeds(next, total, pastG));
      const c = await cpu.run(feeds(next, total, pastC));
      for (const name of Object.keys(c))
        assert.ok(
          maxAbsDiff(g[name]!, c[name]!) <= 1e-4,
          `step ${step} ${name}: ${maxAbsDiff(g[name]!, c[name]!)}`,
        );
      assert.deepEqual([...g.present_key_0!.dims], [1, 2, total, 16]); // 2 KV heads of 16
      [pastG, pastC] = [g, c];
      const h = c.last_hidden_state!.data as Float32Array;
      next = [Math.floor(Math.abs(h[h.length - 1]! * 1000)) % 100];
    }
    assert.deepEqual(gpu.fallbacks(), []);
  } finally {
    await gpu.release();
    await cpu.release();
  }
});
