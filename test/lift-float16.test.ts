/**
 * liftFloat16: a float16 model's types lifted to float32 (what the webgpu provider runs, in fp16 storage):
 * exact weights, float Casts gone, integer parts untouched, and the same results as the float16 model up to
 * where float16 rounds and float32 does not.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { runGraph } from "../src/engine/executor.js";
import { GraphBuilder } from "../src/ir/builder.js";
import type { Graph } from "../src/ir/graph.js";
import { Tensor } from "../src/ir/tensor.js";
import { loadModel } from "../src/onnx/index.js";
import { optimizeGraph } from "../src/passes/index.js";
import { hasFloat16, hasFloat16Weights, liftFloat16 } from "../src/passes/lift-float16.js";
import { toFloat16 } from "../src/passes/to-float16.js";
import { maxAbsDiff } from "./support/compare.js";
import { FIXTURES, fixtureCases } from "./support/fixtures.js";

test("liftFloat16: float16 tensors and types become float32, float Casts go, integer Casts stay", () => {
  const b = new GraphBuilder({ opset: 17 });
  const x = b.input("x", "float16", [2]);
  const ids = b.input("ids", "int64", [2]);
  const shape = b.input("shape", "int64", [1]);
  const w = b.init(new Tensor("float16", [1.5, 0.1], [2]), "w");
  const c = b.op("Constant", [], { value: { type: "tensor", value: new Tensor("float16", [0.25], []) } });
  const fill = b.op("ConstantOfShape", [shape], {
    value: { type: "tensor", value: new Tensor("float16", [-65504], [1]) },
  });
  // A blocked op's float Casts (to float32 and back), and an integer → float16 Cast.
  const wide = b.op("Cast", [b.op("Mul", [x, w])], { to: { type: "int", value: 1 } });
  const back = b.op("Cast", [b.op("Add", [wide, wide])], { to: { type: "int", value: 10 } });
  const idsHalf = b.op("Cast", [ids], { to: { type: "int", value: 10 } }, { name: "ids_cast" });
  b.output(b.op("Add", [b.op("Add", [back, idsHalf]), c], {}, { outputs: ["y"] }), "float16");
  b.output(b.op("Cast", [fill], { to: { type: "int", value: 1 } }, { outputs: ["z"] }), "float32");
  const half = b.build();
  assert.ok(hasFloat16(half) && hasFloat16Weights(half));
  const lifted = liftFloat16(half);
  assert.equal(lifted.initializers.get("w")!.type, "float32");
  // Exactly the half values: 0.1 is 0.0999755859375 in float16, and stays that.
  assert.deepEqual(Array.from(lifted.initializers.get("w")!.data as Float32Array), [1.5, 0.0999755859375]);
  assert.deepEqual(
    lifted.inputs.map((i) => i.dtype),
    ["float32", "int64", "int64"],
  );
  assert.deepEqual(
    lifted.outputs.map((o) => o.dtype),
    ["float32", "float32"],
  );
  assert.ok(!hasFloat16(lifted));
  // The float → float Casts are gone (z's reader was its producer: ConstantOfShape now writes z itself).
  const casts = lifted.nodes.filter((n) => n.opType === "Cast");
  assert.deepEqual(
    casts.map((n) => [n.name, n.attrs.to]),
    [["ids_cast", { type: "int", value: 1 }]],
  );
  assert.ok(lifted.nodes.some((n) => n.opType === "ConstantOfShape" && n.outputs[0] === "z"));
  const feeds = { ids: new Tensor("int64", [3n, 4n], [2]), shape: new Tensor("int64", [3n], [1]) };
  const got = runGraph(lifted, { ...feeds, x: new Tensor("float32", [2, 4], [2]) });
  // (x·w)·2 + ids + 0.25 in float32 math on the half weights.
  assert.deepEqual(Array.from(got.get("y")!.data as Float32Array), [
    2 * 3 + 3 + 0.25,
    4 * 0.0999755859375 * 2 + 4.25,
  ]);
  assert.deepEqual(Array.from(got.get("z")!.data as Float32Array), [-65504, -65504, -65504]);
  const want = runGraph(half, { ...feeds, x: new Tensor("float16", [2, 4], [2]) });
  assert.ok(maxAbsDiff(got.get("y")!, want.get("y")!) <= 2 ** -8, "within float16's rounding of the result");
});

test("liftFloat16: a graph input that a float Cast reads directly, and Casts a graph output keeps", () => {
  const b = new GraphBuilder({ opset: 17 });
  const x = b.input("x", "float32", [2]);
  const h = b.op("Cast", [x], { to: { type: "int", value: 10 } });
  b.output(
    b.op("Cast", [h], { to: { type: "int", value: 1 } }, { name: "out_cast", outputs: ["y"] }),
    "float32",
  );
  const lifted = liftFloat16(b.build());
  // y reads a graph input through two identities: the last Cast stays (there is no producer to rename).
  assert.deepEqual(
    lifted.nodes.map((n) => [n.name, n.inputs, n.outputs]),
    [["out_cast", ["x"], ["y"]]],
  );
  assert.deepEqual(
    runGraph(lifted, { x: new Tensor("float32", [1, 2], [2]) })
      .get("y")!
      .toNumbers(),
    [1, 2],
  );
});

test("GELU fuses where a float16 conversion rounded its constants (√2 → 1.4140625), as in the float32 model", async () => {
  const model = await loadModel(`${FIXTURES}onnx/bert_eager.onnx`);
  const erf = (g: Graph) => g.nodes.filter((n) => n.opType === "Erf").length;
  assert.ok(erf(model.graph) > 0);
  for (const g of [model.graph, toFloat16(model.graph), liftFloat16(toFloat16(model.graph))])
    assert.equal(erf(optimizeGraph(g).graph), 0, "every spelled-out GELU fused");
});

for (const name of ["bert_eager", "llama_past"])
  test(`liftFloat16: ${name} in float16 (kept I/O), lifted and fused, runs like the float32 model on float16 weights`, async () => {
    const model = await loadModel(`${FIXTURES}onnx/${name}.onnx`);
    const half = toFloat16(model.graph, { keepIoTypes: true });
    const lifted = liftFloat16(half);
    assert.ok([...lifted.initializers.values()].every((t) => t.type !== "float16"));
    assert.deepEqual(
      lifted.inputs.map((i) => i.dtype),
      model.graph.inputs.map((i) => i.dtype),
    );
    const { graph } = optimizeGraph(lifted);
    const reference = optimizeGraph(model.graph).graph;
    const ops = (g: typeof graph) =>
      g.nodes.map((n) => `${n.domain}.${n.opType}`).filter((o) => o !== ".Cast");
    assert.deepEqual(ops(graph), ops(reference), "fuses like the float32 model (float Casts aside)");
    for (const c of fixtureCases(name)) {
      const got = runGraph(graph, c.inputs);
      for (const [out, want] of Object.entries(c.outputs)) {
        const d = maxAbsDiff(got.get(out)!, want);
        // float32 math on weights rounded to half: well inside the float16 model's 1e-2.
        assert.ok(d <= 2e-3, `${out}: max |diff| ${d}`);
      }
    }
  });
