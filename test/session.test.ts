import assert from "node:assert/strict";
import { test } from "node:test";
import * as ort from "onnxruntime-node";
import { InferenceSession } from "../src/engine/session.js";
import { InputError, MhafuseError } from "../src/errors.js";
import { GraphBuilder } from "../src/ir/builder.js";
import { Tensor } from "../src/ir/tensor.js";
import { bertInputs, buildBertGraph } from "../src/models/bert.js";
import { modelFromGraph, saveModel } from "../src/onnx/index.js";
import { FIXTURES, fixtureCases, maxAbsDiff } from "./helpers.js";
import { maskedDiff } from "./support/compare.js";

function addGraph() {
  const b = new GraphBuilder();
  const x = b.input("x", "float32", ["batch", 3]);
  const y = b.input("y", "float32", ["batch", 3]);
  b.output(b.op("Add", [x, y], {}, { outputs: ["z"] }), "float32", ["batch", 3]);
  return b.build();
}

test("session mirrors onnxruntime-node: names and run()", async () => {
  const s = InferenceSession.fromGraph(addGraph());
  assert.deepEqual(s.inputNames, ["x", "y"]);
  assert.deepEqual(s.outputNames, ["z"]);
  const out = await s.run({
    x: new Tensor("float32", [1, 2, 3, 4, 5, 6], [2, 3]),
    y: new Tensor("float32", [10, 20, 30, 40, 50, 60], [2, 3]),
  });
  assert.deepEqual([...out.z!.data], [11, 22, 33, 44, 55, 66]);
  assert.deepEqual(out.z!.dims, [2, 3]);
});

test("session accepts onnxruntime-node tensors as feeds", async () => {
  const s = InferenceSession.fromGraph(addGraph());
  const x = new ort.Tensor("float32", Float32Array.from([1, 2, 3]), [1, 3]);
  const out = await s.run({ x, y: x });
  assert.deepEqual([...out.z!.data], [2, 4, 6]);
});

test("feeds are checked: missing input, unknown name, dtype, rank, fixed dim, symbolic binding", async () => {
  const s = InferenceSession.fromGraph(addGraph());
  const ok = new Tensor("float32", [1, 2, 3], [1, 3]);
  await assert.rejects(
    s.run({ x: ok }),
    (e: Error) => e instanceof InputError && /missing input 'y'/.test(e.message),
  );
  await assert.rejects(s.run({ x: ok, y: ok, w: ok }), /unknown input 'w'/);
  await assert.rejects(
    s.run({ x: ok, y: new Tensor("int32", [1, 2, 3], [1, 3]) }),
    /input 'y': expected dtype float32, got int32/,
  );
  await assert.rejects(
    s.run({ x: ok, y: new Tensor("float32", [1, 2, 3], [3]) }),
    /input 'y': expected rank 2 float32\[batch,3\], given float32\[3\]/,
  );
  await assert.rejects(
    s.run({ x: ok, y: new Tensor("float32", [1, 2], [1, 2]) }),
    /input 'y': dim 1 must be 3/,
  );
  await assert.rejects(
    s.run({ x: ok, y: new Tensor("float32", [1, 2, 3, 4, 5, 6], [2, 3]) }),
    /input 'y': dim 0 \('batch'\) is 2, but 'x' set 'batch' = 1/,
  );
});

test("unknown execution providers and unknown ops are clear errors", async () => {
  assert.throws(
    () => InferenceSession.fromGraph(addGraph(), { executionProviders: ["tensorrt"] }),
    MhafuseError,
  );
  const b = new GraphBuilder();
  b.output(b.op("FancyOp", [b.input("x", "float32", [1])], {}, { domain: "com.example", name: "fancy" }));
  const s = InferenceSession.fromGraph(b.build(), { graphOptimizationLevel: "disabled" });
  await assert.rejects(
    s.run({ x: new Tensor("float32", [1], [1]) }),
    /com\.example\.FancyOp \(node 'fancy'\): no implementation for op 'FancyOp' in domain 'com\.example'/,
  );
});

test("a model file that cannot be read is a clear error", async () => {
  await assert.rejects(InferenceSession.create(`${FIXTURES}onnx/no-such-model.onnx`), MhafuseError);
});

test("the generated BERT runs the same in mhafuse (fused and unfused) and onnxruntime-node", async () => {
  const graph = buildBertGraph({ layers: 2, hidden: 64, heads: 4, ffn: 128, vocab: 100 });
  const feeds = bertInputs([12, 7, 1], 12, 100);
  const ortSession = await ort.InferenceSession.create(saveModel(modelFromGraph(graph)));
  const ortFeeds = Object.fromEntries(
    Object.entries(feeds).map(([k, t]) => [k, new ort.Tensor(t.type, t.data, [...t.dims])]),
  );
  const want = (await ortSession.run(ortFeeds)).last_hidden_state!;
  const wantTensor = new Tensor("float32", want.data as Float32Array, want.dims);
  for (const level of ["disabled", "all"] as const) {
    const s = InferenceSession.fromGraph(graph, { graphOptimizationLevel: level, removePadding: false });
    const got = (await s.run(feeds)).last_hidden_state!;
    assert.ok(maxAbsDiff(got, wantTensor) <= 1e-4, `${level}: ${maxAbsDiff(got, wantTensor)}`);
  }
  // Padding removed (the default): the same numbers on the valid tokens, 0 on the padded ones.
  const s = InferenceSession.fromGraph(graph);
  const got = (await s.run(feeds)).last_hidden_state!;
  assert.ok(s.lastPaddingRemoval && !("skipped" in s.lastPaddingRemoval));
  const d = maskedDiff(got, wantTensor, feeds.attention_mask!);
  assert.ok(d.valid <= 1e-4, `padding removed: ${d.valid}`);
  assert.equal(d.padded, 0);
});

test("verify: true checks every fused block and still returns the fused outputs", async () => {
  const s = await InferenceSession.create(`${FIXTURES}onnx/bert_eager.onnx`, { verify: { tolerance: 1e-4 } });
  const c = fixtureCases("bert_eager")[1]!;
  const out = await s.run(c.inputs);
  assert.ok(maxAbsDiff(out.last_hidden_state!, c.outputs.last_hidden_state!) <= 1e-4);
  assert.equal(s.lastVerify?.ok, true);
  assert.equal(s.lastVerify?.blocks.length, 2);
  for (const b of s.lastVerify!.blocks) assert.ok(b.maxAbsDiff <= 1e-4, `${b.id}: ${b.maxAbsDiff}`);
});
