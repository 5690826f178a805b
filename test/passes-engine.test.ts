import assert from "node:assert/strict";
import { test } from "node:test";
import { runGraph } from "../src/engine/executor.js";
import { FusionMismatchError, verifyFusion } from "../src/engine/verify.js";
import { floatAttr, GraphBuilder } from "../src/ir/builder.js";
import { Tensor } from "../src/ir/tensor.js";
import { seqLensFromMask } from "../src/ops/seqlens-from-mask.js";
import { GraphView } from "../src/passes/graph-view.js";
import { foldConstants, foldShapes, optimizeGraph, removeDeadNodes } from "../src/passes/index.js";
import {
  any,
  applyRuleSet,
  describeFailure,
  isMatch,
  match,
  oneOf,
  op,
  type Rule,
  scalarConstant,
  skippable,
} from "../src/passes/pattern.js";
import { specializeShapes } from "../src/passes/specialize-shapes.js";

// ---- the pattern language ------------------------------------------------------------------------------

function smallGraph() {
  const b = new GraphBuilder();
  const x = b.input("x", "float32", [2, 3]);
  const scaled = b.op("Mul", [b.const("float32", 0.5), x], {}, { name: "mul" });
  const id = b.op("Identity", [scaled], {}, { name: "id" });
  const sm = b.op("Softmax", [id], { axis: -1 }, { name: "sm" });
  b.output(sm);
  return { graph: b.build(), x, scaled, sm };
}

test("patterns: commutative ops, captures, skippable pass-through nodes", () => {
  const { graph, x, sm } = smallGraph();
  const view = new GraphView(graph);
  const p = op("Softmax", [skippable(op("Mul", [any("input"), scalarConstant("c")], { commutative: true }))]);
  const m = match(p, sm, view);
  assert.ok(isMatch(m));
  assert.equal(m.values.get("input"), x);
  assert.equal(view.constant(m.values.get("c")!)!.getNumber(0), 0.5);
  assert.deepEqual(
    m.matched.map((n) => n.name),
    ["sm", "id", "mul"],
  );
});

test("patterns: without commutativity or skipping the same graph does not match, with a reason", () => {
  const { graph, sm } = smallGraph();
  const view = new GraphView(graph);
  const strict = op("Softmax", [op("Mul", [any("input"), scalarConstant("c")])]);
  const m = match(strict, sm, view);
  assert.ok(!isMatch(m));
  assert.match(describeFailure(m), /Identity 'id' broke pattern 'Mul': expected Mul, got Identity/);
  const noSkip = op("Softmax", [op("Identity", [op("Mul", [any("input"), scalarConstant("c")])])]);
  const m2 = match(noSkip, sm, view);
  assert.ok(!isMatch(m2));
  assert.match(describeFailure(m2), /not a constant/);
});

test("patterns: alternatives report the deepest failure; a capture must bind one value", () => {
  const { graph, sm } = smallGraph();
  const view = new GraphView(graph);
  const p = oneOf("either", op("Relu"), op("Softmax", [op("Identity", [op("Div")])]));
  const m = match(p, sm, view);
  assert.ok(!isMatch(m));
  assert.equal(m.depth, 2);
  assert.match(describeFailure(m), /Mul 'mul' broke pattern 'Div'/);
  const twice = op("Mul", [any("a"), any("a")], { commutative: true });
  const m3 = match(twice, graph.nodes.find((n) => n.name === "mul")!.outputs[0]!, view);
  assert.ok(!isMatch(m3));
});

test("rule sets: the first rule that matches and does not decline wins; declines carry reasons", () => {
  const { graph, sm } = smallGraph();
  const view = new GraphView(graph);
  const decline: Rule<null> = {
    name: "no",
    pattern: op("Softmax"),
    rewrite: () => ({ decline: "not today" }),
  };
  const accept: Rule<null> = {
    name: "yes",
    pattern: op("Softmax"),
    rewrite: () => ({ add: [], remove: [] }),
  };
  assert.equal(applyRuleSet([decline, accept], sm, view, null).rule, "yes");
  const only = applyRuleSet([decline], sm, view, null);
  assert.equal(only.replacement, undefined);
  assert.equal(only.reason, "not today");
  const none = applyRuleSet([{ ...accept, pattern: op("Relu") }], sm, view, null);
  assert.match(none.reason!, /expected Relu, got Softmax/);
});

// ---- folding and dead nodes -------------------------------------------------------------------------------

test("constant folding turns all-constant subgraphs into initializers with the right values", () => {
  const b = new GraphBuilder();
  const x = b.input("x", "float32", [3]);
  const c = b.op("Constant", [], { value: new Tensor("float32", [1, 2, 3], [3]) });
  const d = b.op("Mul", [c, b.const("float32", 2)]);
  const y = b.op("Add", [x, d], {}, { outputs: ["y"] });
  b.output(y);
  const g = b.build();
  assert.equal(foldConstants(g), 2);
  assert.deepEqual(
    g.nodes.map((n) => n.opType),
    ["Add"],
  );
  assert.deepEqual(g.initializers.get(d)!.toNumbers(), [2, 4, 6]);
  const out = runGraph(g, { x: new Tensor("float32", [10, 20, 30], [3]) }).get("y")!;
  assert.deepEqual(out.toNumbers(), [12, 24, 36]);
});

test("shape folding: Shape of a value with known dims becomes a constant, and its arithmetic folds", () => {
  const b = new GraphBuilder();
  const x = b.input("x", "float32", [2, 3, 4]);
  const shape = b.op("Shape", [b.op("Relu", [x])]);
  const lastTwo = b.op("Slice", [shape, b.const("int64", [1]), b.const("int64", [3])]);
  const target = b.op("Concat", [b.const("int64", [-1]), lastTwo], { axis: 0 });
  const y = b.op("Reshape", [x, target], {}, { outputs: ["y"] });
  b.output(y);
  const g = b.build();
  assert.equal(foldShapes(g), 1);
  foldConstants(g);
  removeDeadNodes(g);
  assert.deepEqual(
    g.nodes.map((n) => n.opType),
    ["Reshape"],
  );
  assert.deepEqual(g.initializers.get(g.nodes[0]!.inputs[1]!)!.toNumbers(), [-1, 3, 4]);
});

test("shape folding leaves symbolic shapes alone", () => {
  const b = new GraphBuilder();
  const x = b.input("x", "float32", ["batch", 4]);
  b.output(b.op("Shape", [b.op("Relu", [x])]));
  const g = b.build();
  assert.equal(foldShapes(g), 0);
});

test("specializeShapes: the feeds' dims fold a symbolic graph's shape arithmetic, results unchanged", () => {
  const b = new GraphBuilder();
  const x = b.input("x", "float32", ["batch", 3, 4]);
  const shape = b.op("Shape", [b.op("Relu", [x])]);
  const lead = b.op("Slice", [shape, b.const("int64", [0]), b.const("int64", [2])]);
  const target = b.op("Concat", [lead, b.const("int64", [2, 2])], { axis: 0 });
  b.output(b.op("Reshape", [x, target], {}, { outputs: ["y"] }));
  const g = b.build();
  const s = specializeShapes(g, { x: [2, 3, 4] });
  assert.deepEqual(
    s.nodes.map((n) => n.opType),
    ["Reshape"],
  );
  assert.equal(g.nodes.length, 5, "the input graph is not modified");
  const feeds = {
    x: new Tensor(
      "float32",
      Float32Array.from({ length: 24 }, (_, i) => i - 7),
      [2, 3, 4],
    ),
  };
  const [before, after] = [runGraph(g, feeds).get("y")!, runGraph(s, feeds).get("y")!];
  assert.deepEqual(after.dims, [2, 3, 2, 2]);
  assert.deepEqual(after.dims, before.dims);
  assert.deepEqual(after.toNumbers(), before.toNumbers());
  // Nothing to fold: the same nodes.
  assert.equal(specializeShapes(smallGraph().graph, { x: [2, 3] }).nodes.length, 3);
});

test("dead-node removal drops unread nodes and initializers, keeps graph outputs", () => {
  const b = new GraphBuilder();
  const x = b.input("x", "float32", [2]);
  const unused = b.op("Mul", [x, b.const("float32", 3, "three")]);
  b.op("Relu", [unused]);
  const y = b.op("Neg", [x]);
  b.output(y);
  const g = b.build();
  assert.equal(removeDeadNodes(g), 2);
  assert.deepEqual(
    g.nodes.map((n) => n.opType),
    ["Neg"],
  );
  assert.ok(!g.initializers.has("three"));
});

// ---- SeqLensFromMask -----------------------------------------------------------------------------------------

test("SeqLensFromMask: right-padded rows give lengths, holes / left padding / empty rows give -1", () => {
  const mask = new Tensor(
    "int64",
    [1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0],
    [6, 4],
  );
  assert.deepEqual([...seqLensFromMask(mask)], [3, 4, -1, -1, -1, 1]);
  assert.deepEqual([...seqLensFromMask(new Tensor("bool", [1, 0, 1, 1], [2, 2]))], [1, 2]);
  // Values other than 0 and 1 are no key mask (the model's (1 − m)·min bias is something else for them): -1.
  assert.deepEqual(
    [...seqLensFromMask(new Tensor("float32", [1, 0.5, 0, 0, 0, 0, 1, 1, 0], [3, 3]))],
    [-1, -1, 2],
  );
  assert.deepEqual([...seqLensFromMask(new Tensor("int64", [1, 2, 0, 1, 1, 1], [2, 3]))], [-1, 3]);
  assert.deepEqual([...seqLensFromMask(new Tensor("float32", [1, Number.NaN, 1, 0], [2, 2]))], [-1, 1]);
  const b = new GraphBuilder();
  b.output(
    b.op("SeqLensFromMask", [b.input("m", "int32", ["b", "s"])], {}, { domain: "mhafuse", outputs: ["len"] }),
  );
  const out = runGraph(b.build(), { m: new Tensor("int32", [1, 1, 0, 0, 1, 0], [2, 3]) }).get("len")!;
  assert.equal(out.type, "int32");
  assert.deepEqual(out.toNumbers(), [2, -1]);
});

// ---- verify mode -------------------------------------------------------------------------------------------

function attentionGraph() {
  const b = new GraphBuilder();
  const [B, S, N, H] = [2, 4, 2, 4];
  const E = N * H;
  let seed = 3;
  const rand = (n: number) =>
    Array.from({ length: n }, () => {
      seed = (seed * 16807) % 2147483647;
      return seed / 2147483647 - 0.5;
    });
  const x = b.input("x", "float32", ["b", "s", E]);
  const heads = (perm: number[]) =>
    b.op(
      "Transpose",
      [
        b.op("Reshape", [
          b.op("MatMul", [x, b.init(new Tensor("float32", rand(E * E), [E, E]))]),
          b.const("int64", [0, 0, N, H]),
        ]),
      ],
      { perm },
    );
  const scores = b.op("Div", [
    b.op("MatMul", [heads([0, 2, 1, 3]), heads([0, 2, 3, 1])]),
    b.const("float32", Math.sqrt(H)),
  ]);
  const ctx = b.op("MatMul", [b.op("Softmax", [scores], { axis: 3 }), heads([0, 2, 1, 3])]);
  const y = b.op(
    "Reshape",
    [b.op("Transpose", [ctx], { perm: [0, 2, 1, 3] }), b.const("int64", [0, 0, E])],
    {},
    { outputs: ["y"] },
  );
  b.output(y);
  return { graph: b.build(), feeds: { x: new Tensor("float32", rand(B * S * E), [B, S, E]) } };
}

test("verify mode reports each fused block's max |diff| and fails loudly naming a wrong block", () => {
  const { graph, feeds } = attentionGraph();
  const before = JSON.stringify(graph.nodes);
  const { graph: fused, report } = optimizeGraph(graph);
  assert.equal(JSON.stringify(graph.nodes), before, "optimizeGraph must not modify its input");
  assert.equal(report.length, 1);
  assert.ok(report[0]!.fused);
  const ok = verifyFusion(graph, fused, report, feeds);
  assert.equal(ok.blocks.length, 1);
  assert.ok(ok.blocks[0]!.maxAbsDiff < 1e-5);
  // Break the fused node on purpose (the unmasked self-attention takes the packed op): a wrong head count must
  // be caught and the block named.
  const node = fused.nodes.find((n) => n.opType === "QKVToContext" || n.opType === "Attention")!;
  if (node.opType === "Attention") node.attrs.scale = floatAttr(1);
  else node.attrs.num_heads = { type: "int", value: 1 };
  assert.throws(
    () => verifyFusion(graph, fused, report, feeds, { tolerance: 1e-3 }),
    (err: unknown) =>
      err instanceof FusionMismatchError &&
      err.message.includes(report[0]!.id) &&
      err.failed[0]!.maxAbsDiff > 1e-3,
  );
});
