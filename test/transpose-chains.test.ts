import assert from "node:assert/strict";
import { test } from "node:test";
import { runGraph } from "../src/engine/executor.js";
import { GraphBuilder } from "../src/ir/builder.js";
import { cloneGraph, type Graph } from "../src/ir/graph.js";
import { Tensor } from "../src/ir/tensor.js";
import { loadModel } from "../src/onnx/index.js";
import { composeTransposes, optimizeGraph, removeDeadNodes } from "../src/passes/index.js";
import { FIXTURES } from "./helpers.js";
import { runOnOnnxruntime } from "./support/ort.js";

const transposes = (g: Graph) => g.nodes.filter((n) => n.opType === "Transpose");
const x = new Tensor(
  "float32",
  Float32Array.from({ length: 2 * 3 * 4 * 5 }, (_, i) => i * 0.5 - 7),
  [2, 3, 4, 5],
);

/** Runs `graph` before and after composeTransposes + dead-node removal: the outputs must be bit-identical. */
function rewriteAndCompare(graph: Graph): Graph {
  const out = cloneGraph(graph);
  composeTransposes(out);
  removeDeadNodes(out);
  const want = runGraph(graph, { x });
  const got = runGraph(out, { x });
  for (const o of graph.outputs) {
    assert.deepEqual([...got.get(o.name)!.dims], [...want.get(o.name)!.dims], o.name);
    assert.deepEqual(got.get(o.name)!.data, want.get(o.name)!.data, o.name);
  }
  return out;
}

test("composeTransposes: a pair that cancels goes away, its reader reads the input", () => {
  const b = new GraphBuilder({ opset: 17 });
  const t1 = b.op("Transpose", [b.op("Relu", [b.input("x", "float32", [2, 3, 4, 5])])], {
    perm: [0, 2, 1, 3],
  });
  const t2 = b.op("Transpose", [t1], { perm: [0, 2, 1, 3] });
  b.output(b.op("Neg", [t2], {}, { outputs: ["y"] }), "float32");
  const out = rewriteAndCompare(b.build());
  assert.equal(transposes(out).length, 0);
});

test("composeTransposes: a pair that does not cancel becomes one Transpose; a chain of three, one", () => {
  const b = new GraphBuilder({ opset: 17 });
  const r = b.op("Relu", [b.input("x", "float32", [2, 3, 4, 5])]);
  const two = b.op("Transpose", [b.op("Transpose", [r], { perm: [0, 2, 1, 3] })], { perm: [3, 1, 2, 0] });
  b.output(b.op("Neg", [two], {}, { outputs: ["y"] }), "float32");
  const t1 = b.op("Transpose", [r], { perm: [1, 0, 3, 2] });
  const t3 = b.op("Transpose", [b.op("Transpose", [t1], { perm: [2, 3, 0, 1] })], { perm: [0, 1, 3, 2] });
  b.output(b.op("Abs", [t3], {}, { outputs: ["z"] }), "float32");
  const out = rewriteAndCompare(b.build());
  assert.equal(transposes(out).length, 2);
});

test("composeTransposes: an inner Transpose with another reader stays; a graph output keeps its name", () => {
  const b = new GraphBuilder({ opset: 17 });
  const t1 = b.op("Transpose", [b.op("Relu", [b.input("x", "float32", [2, 3, 4, 5])])], {
    perm: [0, 2, 1, 3],
  });
  b.output(b.op("Neg", [t1], {}, { outputs: ["side"] }), "float32");
  b.output(b.op("Transpose", [t1], { perm: [0, 2, 1, 3] }, { outputs: ["y"] }), "float32");
  const out = rewriteAndCompare(b.build());
  // The cancelling pair's outer Transpose is the graph output 'y': kept (as is); the inner has a reader.
  assert.equal(transposes(out).length, 2);
});

test("composeTransposes: Slices between a Transpose and its inverse slice the input instead", () => {
  const b = new GraphBuilder({ opset: 17 });
  const r = b.op("Relu", [b.input("x", "float32", [2, 3, 4, 5])]);
  const t1 = b.op("Transpose", [r], { perm: [0, 2, 1, 3] });
  const int64 = (v: number[]) => b.init(new Tensor("int64", v, [v.length]));
  // The last axis in two pieces (GPT-NeoX's Q|K|V split), axes given as -1 and as 3.
  const a = b.op("Slice", [t1, int64([0]), int64([2]), int64([-1])]);
  const c = b.op("Slice", [t1, int64([2]), int64([5]), int64([3])]);
  // Axis 1 of the transposed tensor (axis 2 of x), with a step; and no axes input (the first two axes).
  const d = b.op("Slice", [t1, int64([1]), int64([4]), int64([1]), int64([2])]);
  const e = b.op("Slice", [t1, int64([1, 1]), int64([2, 3])]);
  for (const [v, name] of [
    [a, "ya"],
    [c, "yc"],
    [d, "yd"],
    [e, "ye"],
  ] as const)
    b.output(b.op("Transpose", [v], { perm: [0, 2, 1, 3] }, { outputs: [name] }), "float32");
  // Not an inverse: kept.
  b.output(b.op("Transpose", [a], { perm: [1, 0, 2, 3] }, { outputs: ["keep"] }), "float32");
  const out = rewriteAndCompare(b.build());
  // Slice a has a second reader (the non-inverse Transpose): it stays as it was, with the inner Transpose and
  // both of its readers; c, d and e slice x now.
  assert.equal(transposes(out).length, 3);
  const slices = out.nodes.filter((n) => n.opType === "Slice");
  assert.equal(slices.length, 4);
  assert.deepEqual(
    slices.map((n) => n.inputs[0]),
    [t1, r, r, r],
  );
});

test("composeTransposes: a sunk Slice's output read by another sink candidate; int32 indices stay int32", async () => {
  const b = new GraphBuilder({ opset: 17 });
  const r = b.op("Relu", [b.input("x", "float32", [2, 3, 4, 5])]);
  const int64 = (v: number[]) => b.init(new Tensor("int64", v, [v.length]));
  const int32 = (v: number[]) => b.init(new Tensor("int32", v, [v.length]));
  // y = T(Slice(T(r))) sinks into a Slice of r; z = T(Slice(y)) must then not take y's removed Transpose as
  // its inner one (it read that Transpose's input, a name nothing produced any more).
  const s1 = b.op("Slice", [
    b.op("Transpose", [r], { perm: [0, 2, 1, 3] }),
    int64([0]),
    int64([4]),
    int64([3]),
  ]);
  const y = b.op("Transpose", [s1], { perm: [0, 2, 1, 3] });
  const s2 = b.op("Slice", [y, int64([0]), int64([2]), int64([3])]);
  b.output(b.op("Transpose", [s2], { perm: [0, 2, 1, 3] }, { outputs: ["z"] }), "float32");
  // int32 starts and ends with no axes input: the axes made for the sunk Slice are int32 too (ONNX's Tind).
  const s3 = b.op("Slice", [b.op("Transpose", [r], { perm: [0, 2, 1, 3] }), int32([0, 1]), int32([2, 3])]);
  b.output(b.op("Transpose", [s3], { perm: [0, 2, 1, 3] }, { outputs: ["w"] }), "float32");
  const graph = b.build();
  const out = rewriteAndCompare(graph);
  const want = await runOnOnnxruntime(graph, { x });
  const got = await runOnOnnxruntime(out, { x });
  for (const name of ["z", "w"]) assert.deepEqual(got[name]!.data, want[name]!.data, name);
});

test("composeTransposes: the decoders' Transposes around the fused attention go (Qwen3 9 → 1, GPT-NeoX 9 → 1)", async () => {
  for (const name of ["qwen3_sdpa", "gpt_neox_sdpa"]) {
    const model = await loadModel(`${FIXTURES}onnx/${name}.onnx`);
    const before = optimizeGraph(model.graph, { level: "all", disabledPasses: ["compose-transposes"] }).graph;
    const after = optimizeGraph(model.graph, { level: "all" }).graph;
    assert.equal(transposes(before).length, 9, name);
    // What is left: the rotary tables' [0, 2, 1] (positions × frequencies), not on the attention's path.
    assert.equal(transposes(after).length, 1, name);
  }
});
