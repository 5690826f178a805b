/**
 * float16 models (weights already f16: the fixtures through toFloat16, with and without kept I/O types) on the
 * webgpu provider: the session lifts them to float32 types (passes/lift-float16.ts) and runs them in fp16
 * mode — f16 weights and activations, f32 math — by default, feeds and outputs in the model's dtypes.
 *
 * Bound: onnxruntime-node CPU's run of the same float16 model within 1e-2, the bound of
 * test/float16-models.test.ts. Both sides round to half in different places (onnxruntime after every op,
 * mhafuse at each stored activation), each a few half ulps from the float32 model. Measured on lavapipe
 * (SIMT f16 kernels), 11-29: bert_eager 5.86e-3, distilbert / bart / qwen3 3.91e-3, llama_past 1.73e-3.
 *
 * No fallbacks: fallbacks() lists every node that ran on the CPU with model data (the shape and integer mask
 * chains run there by design and are not listed), and the GEMMs and attention compiled f16 kernels only.
 * Before the lift every node ran on the CPU, unreported: the first tests pin that a node no kernel takes
 * in its dtype is reported now.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { WebGpuBackend } from "../src/backends/webgpu/backend.js";
import { buildEngine } from "../src/engine/engine-file.js";
import { planGraph } from "../src/engine/executor.js";
import { InferenceSession } from "../src/engine/session.js";
import { GraphBuilder } from "../src/ir/builder.js";
import type { Graph } from "../src/ir/graph.js";
import { Tensor } from "../src/ir/tensor.js";
import { loadModel, modelFromGraph, saveModel } from "../src/onnx/index.js";
import { optimizeGraph } from "../src/passes/index.js";
import { toFloat16 } from "../src/passes/to-float16.js";
import { maxAbsDiff } from "./support/compare.js";
import { FIXTURES, fixtureCases } from "./support/fixtures.js";
import { halfFeeds, runOrt } from "./support/float16.js";
import {
  backendWithoutShaderF16,
  disposeGpuContext,
  gpuContext,
  llamaPastFeeds,
  warnings,
} from "./webgpu-helpers.js";

after(() => disposeGpuContext());

async function halfModel(name: string, keepIoTypes: boolean): Promise<Graph> {
  const model = await loadModel(`${FIXTURES}onnx/${name}.onnx`);
  return toFloat16(model.graph, { keepIoTypes });
}

/** The pipeline keys a session's device compiled (which kernel variants ran). */
async function pipelineKeys(session: InferenceSession): Promise<string[]> {
  const backend = (session as unknown as { backend: WebGpuBackend }).backend;
  return (await backend.context()).pipelines.keys();
}

const GEMM_OR_FLASH = /^(gemm|flash)/;
const F16_KERNEL = /^(gemm-f16|gemm-tc|flash-f16|flash-tc):/;

test("webgpu backend: a float16 graph's nodes that no kernel takes are reported as fallbacks", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  // Prepared directly, not lifted: every kernel is float32-typed, so the model data stays on the host.
  const { graph } = optimizeGraph(await halfModel("bert_eager", true));
  const backend = new WebGpuBackend();
  try {
    const prepared = await backend.prepare(graph, planGraph(graph));
    const [c] = fixtureCases("bert_eager");
    const got = await prepared.run(c!.inputs, Object.keys(c!.outputs));
    for (const [k, want] of Object.entries(c!.outputs))
      assert.ok(maxAbsDiff(got[k]!, want) <= 1e-2, `${k}: the CPU reference still computes it`);
    const reported = new Map(backend.fallbacks().map((f) => [f.node, f]));
    const compute = graph.nodes.filter((n) =>
      ["Gemm", "FusedGemm", "QKVToContext", "SkipLayerNormalization", "LayerNormalization"].includes(
        n.opType,
      ),
    );
    assert.ok(compute.length >= 10);
    for (const n of compute) {
      const f = reported.get(n.name);
      assert.ok(f, `${n.opType} '${n.name}' ran on the CPU unreported`);
      assert.equal(f.reason, "no webgpu kernel takes float16 inputs");
    }
    // The embedding Gathers read float16 tables: reported. The shape chains' Gathers of Shape are not.
    const shapes = new Set(graph.nodes.filter((n) => n.opType === "Shape").map((n) => n.outputs[0]));
    const gathers = graph.nodes.filter((n) => n.opType === "Gather");
    for (const n of gathers)
      if (graph.initializers.get(n.inputs[0]!)?.type === "float16")
        assert.ok(reported.has(n.name), `embedding Gather '${n.name}'`);
      else if (shapes.has(n.inputs[0]!)) assert.ok(!reported.has(n.name), `shape Gather '${n.name}'`);
    assert.ok(gathers.some((n) => shapes.has(n.inputs[0]!)));
    assert.ok(![...reported.values()].some((f) => ["Shape", "Reshape", "Concat"].includes(f.op)));
  } finally {
    await backend.dispose();
  }
});

test("webgpu provider: float64 nodes (no kernel takes them) show in session.fallbacks()", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  const b = new GraphBuilder({ opset: 17 });
  const x = b.input("x", "float64", [2, 3]);
  const w = b.init(new Tensor("float64", [1, 2, 3, 4, 5, 6], [3, 2]), "w");
  const bias = b.init(new Tensor("float64", [0.5, -0.5], [2]), "bias");
  b.output(
    b.op("Add", [b.op("MatMul", [x, w], {}, { name: "mm" }), bias], {}, { name: "add", outputs: ["y"] }),
    "float64",
  );
  const session = InferenceSession.fromGraph(b.build(), { executionProviders: ["webgpu"] });
  try {
    const y = await session.run({ x: new Tensor("float64", [1, 0, 0, 0, 1, 1], [2, 3]) });
    assert.deepEqual(Array.from(y.y!.toFloat64()), [1.5, 1.5, 8.5, 9.5]);
    assert.deepEqual(
      session.fallbacks().map((f) => [f.node, f.op, f.reason]),
      [
        ["mm", "MatMul", "no webgpu kernel takes float64 inputs"],
        ["add", "Add", "no webgpu kernel takes float64 inputs"],
      ],
    );
  } finally {
    await session.release();
  }
});

/** Fixtures in float16, with kept (float32) or float16 I/O: encoders, an encoder-decoder, decoders. */
const MODELS: { name: string; keep: boolean; bound: number }[] = [
  { name: "bert_eager", keep: false, bound: 1e-2 },
  { name: "bert_eager", keep: true, bound: 1e-2 },
  { name: "distilbert_eager", keep: false, bound: 1e-2 },
  { name: "bart_eager", keep: true, bound: 1e-2 },
  { name: "qwen3_sdpa", keep: false, bound: 1e-2 },
  { name: "llama_past", keep: true, bound: 1e-2 },
];

for (const { name, keep, bound } of MODELS)
  test(`webgpu provider: ${name} in float16 (${keep ? "float32" : "float16"} I/O) runs f16 kernels, no fallback, within ${bound} of onnxruntime`, async (t) => {
    const ctx = await gpuContext();
    if (typeof ctx === "string") return t.skip(ctx);
    const half = await halfModel(name, keep);
    const { value: session, lines } = await warnings(() =>
      InferenceSession.create(saveModel(modelFromGraph(half)), { executionProviders: ["webgpu"] }),
    );
    try {
      // fp16 by default: no notice where the device has tensor cores, the SIMT one where it has shader-f16
      // only (lavapipe), fp32 math where it has no shader-f16.
      assert.ok(lines.length <= 1, lines.join("\n"));
      if (lines[0])
        assert.match(lines[0], /^mhafuse webgpu: (fp16 without tensor cores|float16 model, running fp32)/);
      assert.deepEqual(
        session.inputMetadata.map((i) => i.dtype),
        half.inputs.map((i) => i.dtype),
      );
      let worst = 0;
      for (const c of fixtureCases(name)) {
        const feeds = halfFeeds(c.inputs, half);
        const want = await runOrt(half, feeds);
        const got = await session.run(feeds);
        for (const [out, ref] of Object.entries(want)) {
          assert.equal(got[out]!.type, ref.type, `${out}: the model's dtype`);
          const d = maxAbsDiff(got[out]!, ref);
          worst = Math.max(worst, d);
          assert.ok(d <= bound, `${name} ${out}: max |diff| ${d} > ${bound}`);
        }
      }
      t.diagnostic(`max |diff| vs onnxruntime float16: ${worst.toExponential(2)}`);
      assert.deepEqual(session.fallbacks(), []);
      const keys = (await pipelineKeys(session)).filter((k) => GEMM_OR_FLASH.test(k));
      if (ctx.f16?.shaderF16) {
        assert.ok(
          keys.some((k) => k.startsWith("gemm")) && keys.some((k) => k.startsWith("flash")),
          keys.join(),
        );
        const f32 = keys.filter((k) => !F16_KERNEL.test(k));
        assert.deepEqual(f32, [], "GEMMs and attention ran f16 kernels only");
      }
    } finally {
      await session.release();
    }
  });

test("webgpu provider: float16 llama_past decoding loop (present → past in float16) matches onnxruntime", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  const half = await halfModel("llama_past", false);
  const session = await InferenceSession.create(saveModel(modelFromGraph(half)), {
    executionProviders: ["webgpu"],
  });
  try {
    const prompt = [5, 17, 42, 8];
    let past: Record<string, Tensor> | undefined;
    let next = prompt;
    for (let step = 0; step <= 3; step++) {
      const total = prompt.length + step;
      const feeds = halfFeeds(llamaPastFeeds(next, total, past), half);
      const got = await session.run(feeds);
      const want = await runOrt(half, feeds);
      for (const [out, ref] of Object.entries(want)) {
        assert.equal(got[out]!.type, "float16");
        const d = maxAbsDiff(got[out]!, ref);
        assert.ok(d <= 1e-2, `step ${step} ${out}: max |diff| ${d}`);
      }
      // The next step feeds this one's float16 presents back, as a caller would.
      past = got;
      next = [(step * 31 + 7) % 100];
    }
    assert.deepEqual(session.fallbacks(), []);
  } finally {
    await session.release();
  }
});

test("webgpu provider: an engine file built from a float16 model (fused in float16) runs lifted, no fallback", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  const half = await halfModel("distilbert_eager", false);
  const engine = buildEngine(modelFromGraph(half), { backend: "webgpu" });
  const session = await warnings(() => InferenceSession.create(engine, { executionProviders: ["webgpu"] }));
  try {
    for (const c of fixtureCases("distilbert_eager")) {
      const feeds = halfFeeds(c.inputs, half);
      const want = await runOrt(half, feeds);
      const got = await session.value.run(feeds);
      for (const [out, ref] of Object.entries(want)) {
        assert.equal(got[out]!.type, "float16");
        const d = maxAbsDiff(got[out]!, ref);
        assert.ok(d <= 1e-2, `${out}: max |diff| ${d}`);
      }
    }
    assert.deepEqual(session.value.fallbacks(), []);
  } finally {
    await session.value.release();
  }
});

test("webgpu provider: a float16 model with precision fp32 runs f32 kernels, closer to float32 math", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  const half = await halfModel("bert_eager", true);
  const bytes = saveModel(modelFromGraph(half));
  const fp32 = await InferenceSession.create(bytes, { executionProviders: ["webgpu"], precision: "fp32" });
  const fp16 = await warnings(() => InferenceSession.create(bytes, { executionProviders: ["webgpu"] }));
  try {
    let [d32, d16] = [0, 0];
    for (const c of fixtureCases("bert_eager")) {
      const a = await fp32.run(c.inputs);
      const b = await fp16.value.run(c.inputs);
      // Against the float32 model's outputs: f32 math on the float16 weights only rounds the weights.
      for (const [k, want] of Object.entries(c.outputs)) {
        d32 = Math.max(d32, maxAbsDiff(a[k]!, want));
        d16 = Math.max(d16, maxAbsDiff(b[k]!, want));
      }
    }
    t.diagnostic(
      `max |diff| vs the float32 model: fp32 ${d32.toExponential(2)}, fp16 ${d16.toExponential(2)}`,
    );
    const keys = (await pipelineKeys(fp32)).filter((k) => GEMM_OR_FLASH.test(k));
    assert.ok(keys.length > 0 && keys.every((k) => !F16_KERNEL.test(k)), keys.join());
    assert.ok(d32 <= 2e-3, `fp32: ${d32}`);
    if (ctx.f16?.shaderF16) assert.ok(d16 > d32, `fp16 ${d16} should round more than fp32 ${d32}`);
    assert.deepEqual(fp32.fallbacks(), []);
  } finally {
    await fp32.release();
    await fp16.value.release();
  }
});

test("webgpu float16 model without shader-f16: fp32 math, one notice naming the model", async (t) => {
  // What the session makes for a float16 model with no precision given.
  const backend = await backendWithoutShaderF16({ precision: "fp16", float16Model: true });
  if (typeof backend === "string") return t.skip(backend);
  try {
    const { lines } = await warnings(() => backend.precision());
    assert.deepEqual(lines, ["mhafuse webgpu: float16 model, running fp32: the adapter has no shader-f16"]);
    assert.deepEqual(await backend.precision(), {});
  } finally {
    await backend.dispose();
  }
});

test("a float32 model with a deliberate rounding to half is not lifted: webgpu gives the CPU's numbers", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  // y = Relu(float32(float16(x · w))): 0.1 rounds to 0.0999755859375 and 70000 overflows to +inf in half.
  const b = new GraphBuilder({ opset: 17 });
  const m = b.op("Mul", [b.input("x", "float32", [2]), b.init(new Tensor("float32", [1, 1], [2]))]);
  const h = b.op("Cast", [m], { to: { type: "int", value: 10 } });
  const back = b.op("Cast", [h], { to: { type: "int", value: 1 } });
  b.output(b.op("Relu", [back], {}, { outputs: ["y"] }), "float32");
  const bytes = saveModel(modelFromGraph(b.build()));
  const feeds = { x: new Tensor("float32", [0.1, 70000], [2]) };
  const session = await InferenceSession.create(bytes, { executionProviders: ["webgpu"] });
  try {
    const y = (await session.run(feeds)).y!;
    assert.deepEqual(Array.from(y.data as Float32Array), [0.0999755859375, Number.POSITIVE_INFINITY]);
  } finally {
    await session.release();
  }
});
