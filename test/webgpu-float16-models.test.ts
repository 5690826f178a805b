/**
 * The webgpu backend's fallback report for model data whose dtype no kernel takes (every webgpu kernel is
 * float32-typed): such nodes run on the CPU reference without any read-back, and used to go unreported — a
 * float16 model ran 0 of its nodes on the GPU with `fallbacks()` empty. The shape and integer mask chains run
 * on the CPU by design and stay unreported.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { WebGpuBackend } from "../src/backends/webgpu/backend.js";
import { planGraph } from "../src/engine/executor.js";
import { InferenceSession } from "../src/engine/session.js";
import { GraphBuilder } from "../src/ir/builder.js";
import type { Graph } from "../src/ir/graph.js";
import { Tensor } from "../src/ir/tensor.js";
import { loadModel } from "../src/onnx/index.js";
import { optimizeGraph } from "../src/passes/index.js";
import { toFloat16 } from "../src/passes/to-float16.js";
import { maxAbsDiff } from "./support/compare.js";
import { FIXTURES, fixtureCases } from "./support/fixtures.js";
import { disposeGpuContext, gpuContext } from "./webgpu-helpers.js";

after(() => disposeGpuContext());

async function halfModel(name: string, keepIoTypes: boolean): Promise<Graph> {
  const model = await loadModel(`${FIXTURES}onnx/${name}.onnx`);
  return toFloat16(model.graph, { keepIoTypes });
}

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
