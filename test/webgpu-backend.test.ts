/**
 * The webgpu backend behind the seam (lavapipe in CI): the BERT and BART fixture models, fused, match onnxruntime's
 * reference outputs within 1e-4 with no op falling back to the CPU; the unfused graph of one runs too.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { WebGpuBackend } from "../src/backends/webgpu/backend.js";
import { planGraph } from "../src/engine/executor.js";
import { InferenceSession } from "../src/engine/session.js";
import type { Tensor } from "../src/ir/tensor.js";
import { loadModel, tensorFromJson } from "../src/onnx/index.js";
import { optimizeGraph } from "../src/passes/index.js";
import { maxAbsDiff } from "./support/compare.js";
import { gpuContext } from "./webgpu-helpers.js";

const fixtures = fileURLToPath(new URL("../../shared/fixtures/onnx/", import.meta.url));
const backend = new WebGpuBackend();
after(() => backend.dispose());

type JsonTensor = Parameters<typeof tensorFromJson>[0];
interface IoCase {
  inputs: Record<string, JsonTensor>;
  outputs: Record<string, JsonTensor>;
}
const decode = (r: Record<string, JsonTensor>): Record<string, Tensor> =>
  Object.fromEntries(Object.entries(r).map(([k, v]) => [k, tensorFromJson(v)]));

for (const [name, level] of [
  ["bert_eager", "all"],
  ["bert_sdpa", "all"],
  ["distilbert_eager", "all"],
  // onnxruntime-fused graph (BiasGelu, SkipLayerNormalization) and an encoder-decoder (cross and causal
  // self attention on mhafuse.Attention).
  ["bert_ort_fused", "all"],
  ["bart_sdpa", "all"],
  ["bert_eager", "disabled"],
] as const) {
  test(`webgpu backend: ${name} (${level === "all" ? "fused" : "unfused"}) matches onnxruntime`, async (t) => {
    const ctx = await gpuContext();
    if (typeof ctx === "string") return t.skip(ctx);
    const model = await loadModel(`${fixtures}${name}.onnx`);
    const { graph } = optimizeGraph(model.graph, { level });
    const prepared = await backend.prepare(graph, planGraph(graph));
    const { cases } = JSON.parse(readFileSync(`${fixtures}${name}.io.json`, "utf8")) as { cases: IoCase[] };
    for (const c of cases) {
      const want = decode(c.outputs);
      const got = await prepared.run(decode(c.inputs), Object.keys(want));
      for (const [out, ref] of Object.entries(want)) {
        const d = maxAbsDiff(got[out]!, ref);
        assert.ok(d <= 1e-4, `${name} ${out}: max |diff| ${d}`);
      }
    }
    if (level === "all") assert.deepEqual(backend.fallbacks(), [], "no op may fall back on a fused fixture");
  });
}

test("webgpu provider: InferenceSession runs distilbert_eager on the GPU and reports no fallback", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  const session = await InferenceSession.create(`${fixtures}distilbert_eager.onnx`, {
    executionProviders: ["webgpu"],
  });
  try {
    assert.equal(session.provider, "webgpu");
    const { cases } = JSON.parse(readFileSync(`${fixtures}distilbert_eager.io.json`, "utf8")) as {
      cases: IoCase[];
    };
    const want = decode(cases[0]!.outputs);
    const got = await session.run(decode(cases[0]!.inputs));
    for (const [out, ref] of Object.entries(want)) assert.ok(maxAbsDiff(got[out]!, ref) <= 1e-4, out);
    assert.deepEqual(session.fallbacks(), []);
  } finally {
    await session.release();
  }
});
