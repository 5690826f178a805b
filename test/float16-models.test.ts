import assert from "node:assert/strict";
import { test } from "node:test";
import { runGraph } from "../src/engine/executor.js";
import { InferenceSession } from "../src/engine/session.js";
import { GraphBuilder } from "../src/ir/builder.js";
import { Tensor } from "../src/ir/tensor.js";
import { loadModel, modelFromGraph, saveModel } from "../src/onnx/index.js";
import { optimizeGraph, summarizeReport } from "../src/passes/index.js";
import { toFloat16 } from "../src/passes/to-float16.js";
import { toOnnxruntime } from "../src/passes/to-onnxruntime.js";
import { maxAbsDiff } from "./support/compare.js";
import { FIXTURE_MODELS, FIXTURES, fixtureCases } from "./support/fixtures.js";
import { halfFeeds, runOrt } from "./support/float16.js";

// Every fixture model converted to float16 (weights and compute, onnxconverter-common's
// convert_float_to_float16 with keep_io_types=False), run by mhafuse unfused and fused through the API, and
// compared with onnxruntime-node CPU running the same float16 model.
//
// Bound: 1e-2 absolute. The outputs are LayerNorm'd hidden states of magnitude up to about 4, where one half
// ulp is 2^-9 ≈ 1.95e-3 (2^-10 below 2): 1e-2 is 5 ulps there. Measured (11-28, rms-fusion): at most 5.86e-3
// (bert_eager, bert_sdpa), qwen3_sdpa 3.91e-3 fused and unfused, llama_past 1.95e-3, the others 2.9e-3 to 3.9e-3.
//
// The reference run disables onnxruntime's FuseFp16InitializerToFp32NodeTransformer (level "all", REFERENCE_
// DISABLED). On qwen3_sdpa it moves onnxruntime's float16 result 2.9e-2 / 3.5e-2 away from onnxruntime's own
// float32 result and from its float16 result at level "extended" (both 2.3e-3 / 2.1e-3 from float32 with the
// transformer off): it rewrites the RMSNorms onnxruntime's SimplifiedLayerNormFusion made of the float16 graph.
// This used to be qwen3_sdpa's 5e-2 exception, blamed on mhafuse's per-op rounding; with the reference fixed,
// every model, fused and unfused, is within 1e-2. Fused, each RMSNorm is one SimplifiedLayerNormalization with
// float32 statistics (src/passes/rms-norm.ts).
const BOUND = 1e-2;
test("toFloat16: initializers, Constant, ConstantOfShape, Cast and I/O types; integer parts kept", () => {
  const b = new GraphBuilder({ opset: 17 });
  const x = b.input("x", "float32", [2]);
  const shape = b.input("shape", "int64", [1]);
  const w = b.init(new Tensor("float32", [1.5, -1e-9], [2]), "w");
  const ids = b.init(new Tensor("int64", [3n, 4n], [2]), "ids");
  const big = b.op("Constant", [], { value_float: { type: "float", value: -3.4028234663852886e38 } });
  const fill = b.op("ConstantOfShape", [shape], { value: new Tensor("float32", [-3.4e38], [1]) });
  const cast = b.op("Cast", [b.op("Cast", [ids], { to: 1 })], { to: 1 });
  b.output(b.op("Add", [b.op("Mul", [x, w]), b.op("Add", [cast, big])], {}, { outputs: ["y"] }), "float32");
  b.output(b.op("Identity", [fill], {}, { outputs: ["z"] }), "float32");
  const half = toFloat16(b.build());
  assert.equal(half.initializers.get("w")!.type, "float16");
  // Below half's smallest subnormal: raised to it (sign kept) instead of flushed to zero.
  assert.deepEqual(Array.from(half.initializers.get("w")!.toFloat64()), [1.5, -(2 ** -24)]);
  assert.equal(half.initializers.get("ids")!.type, "int64");
  assert.deepEqual(
    half.inputs.map((i) => i.dtype),
    ["float16", "int64"],
  );
  assert.deepEqual(
    half.outputs.map((o) => o.dtype),
    ["float16", "float16"],
  );
  const casts = half.nodes.filter((n) => n.opType === "Cast").map((n) => n.attrs.to);
  assert.deepEqual(casts, [
    { type: "int", value: 10 },
    { type: "int", value: 10 },
  ]);
  const y = runGraph(half, {
    x: new Tensor("float16", [2, 4], [2]),
    shape: new Tensor("int64", [3n], [1]),
  });
  // finfo(float32).min is clamped to -65504, not -inf: a masked score stays finite, as in the float32 model.
  assert.deepEqual(Array.from(y.get("z")!.toFloat64()), [-65504, -65504, -65504]);
  // x·w + (float(ids) + min): every op rounds to float16, whose ulp at 65504 is 32, so the small terms vanish.
  assert.deepEqual(Array.from(y.get("y")!.toFloat64()), [-65504, -65504]);
});

test("toFloat16 blockOps: the listed op computes in float32 between Casts", () => {
  const b = new GraphBuilder({ opset: 17 });
  const x = b.input("x", "float32", [1, 3]);
  b.output(
    b.op("Softmax", [b.op("Mul", [x, b.const("float32", 3)])], { axis: -1 }, { outputs: ["y"] }),
    "float32",
  );
  const half = toFloat16(b.build(), { blockOps: ["Softmax"] });
  const softmax = half.nodes.find((n) => n.opType === "Softmax")!;
  const castTo = (v: string) =>
    half.nodes.find((n) => n.outputs.includes(v) && n.opType === "Cast")?.attrs.to;
  assert.deepEqual(castTo(softmax.inputs[0]!), { type: "int", value: 1 });
  const after = half.nodes.find((n) => n.inputs.includes(softmax.outputs[0]!))!;
  assert.deepEqual(
    [after.opType, after.attrs.to, after.outputs[0]],
    ["Cast", { type: "int", value: 10 }, "y"],
  );
  const y = runGraph(half, { x: new Tensor("float16", [0.5, 1, 2], [1, 3]) }).get("y")!;
  assert.equal(y.type, "float16");
  const e = [1.5, 3, 6].map(Math.exp);
  const sum = e.reduce((a, c) => a + c, 0);
  const want = new Tensor(
    "float16",
    e.map((v) => v / sum),
    [1, 3],
  );
  assert.deepEqual(Array.from(y.toFloat64()), Array.from(want.toFloat64()));
});

test("toFloat16 keepIoTypes: float32 at the edges, float16 inside", async () => {
  const model = await loadModel(`${FIXTURES}onnx/llama_past.onnx`);
  const half = toFloat16(model.graph, { keepIoTypes: true });
  assert.deepEqual(
    half.inputs.map((i) => i.dtype),
    model.graph.inputs.map((i) => i.dtype),
  );
  assert.ok([...half.initializers.values()].every((t) => t.type !== "float32"));
  const { graph, report } = optimizeGraph(half, { level: "all" });
  assert.ok(
    report.every((r) => r.fused),
    summarizeReport(report),
  );
  for (const c of fixtureCases("llama_past")) {
    const want = await runOrt(half, c.inputs);
    const got = runGraph(graph, c.inputs);
    for (const [name, ref] of Object.entries(want)) {
      assert.equal(got.get(name)!.type, "float32");
      const d = maxAbsDiff(got.get(name)!, ref);
      assert.ok(d <= BOUND, `${name}: max |diff| ${d}`);
    }
  }
});

for (const name of FIXTURE_MODELS) {
  test(`${name} in float16: fuses like float32, unfused and fused match onnxruntime-node`, async () => {
    const model = await loadModel(`${FIXTURES}onnx/${name}.onnx`);
    const half = toFloat16(model.graph);
    const f32 = optimizeGraph(model.graph, { level: "all" }).report;
    const { report } = optimizeGraph(half, { level: "all" });
    assert.deepEqual(
      report.map((r) => [r.kind, r.fused, r.path]),
      f32.map((r) => [r.kind, r.fused, r.path]),
      summarizeReport(report),
    );
    const bytes = saveModel(modelFromGraph(half));
    const fused = await InferenceSession.create(bytes, { graphOptimizationLevel: "all", verify: true });
    const unfused = await InferenceSession.create(bytes, { graphOptimizationLevel: "disabled" });
    for (const c of fixtureCases(name)) {
      const feeds = halfFeeds(c.inputs, half);
      const want = await runOrt(half, feeds);
      const a = await fused.run(feeds);
      const b = await unfused.run(feeds);
      assert.ok(fused.lastVerify?.ok, "verify mode: fused blocks match the unfused graph");
      for (const [out, ref] of Object.entries(want)) {
        assert.equal(a[out]!.type, "float16");
        const dFused = maxAbsDiff(a[out]!, ref);
        const dUnfused = maxAbsDiff(b[out]!, ref);
        assert.ok(dFused <= BOUND, `${name} ${out} fused: max |diff| ${dFused} > ${BOUND}`);
        assert.ok(dUnfused <= BOUND, `${name} ${out} unfused: max |diff| ${dUnfused} > ${BOUND}`);
      }
    }
    await fused.release();
    await unfused.release();
  });
}

// `optimize --target onnxruntime` on float16 models: onnxruntime runs the converted fused graph and matches
// its own run of the unfused float16 model. bert_ort_fused's converted graph crashes onnxruntime-node 1.30
// (SIGSEGV) in session creation at graphOptimizationLevel "all": its level-4
// FuseFp16InitializerToFp32NodeTransformer does (the session loads and runs with that one optimizer
// disabled, or at "layout" and below); every reference run has it disabled (REFERENCE_DISABLED, above).
for (const name of FIXTURE_MODELS) {
  test(`${name} in float16: --target onnxruntime runs on onnxruntime-node and matches`, async () => {
    const model = await loadModel(`${FIXTURES}onnx/${name}.onnx`);
    const half = toFloat16(model.graph);
    const converted = toOnnxruntime(optimizeGraph(half, { level: "all" }).graph).graph;
    assert.ok(!converted.nodes.some((n) => n.domain === "mhafuse"));
    for (const c of fixtureCases(name)) {
      const feeds = halfFeeds(c.inputs, half);
      const want = await runOrt(half, feeds);
      const got = await runOrt(converted, feeds);
      for (const [out, ref] of Object.entries(want)) {
        const d = maxAbsDiff(got[out]!, ref);
        assert.ok(d <= BOUND, `${name} ${out}: max |diff| ${d}`);
      }
    }
  });
}
