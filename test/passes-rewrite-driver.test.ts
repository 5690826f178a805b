import assert from "node:assert/strict";
import { test } from "node:test";
import { GraphBuilder } from "../src/ir/builder.js";
import type { Node } from "../src/ir/graph.js";
import { GraphView } from "../src/passes/graph-view.js";
import { any, oneOf, op, skippable } from "../src/passes/pattern.js";
import { rootIndex, rootOps, runRewritePass } from "../src/passes/rewrite-driver.js";

test("rewrite driver: the root-op index is derived from the patterns (ops, alternatives, pass-through skips)", () => {
  assert.deepEqual([...rootOps(op("Mul", [any(), any()]))!], ["::Mul"]);
  assert.deepEqual(
    [...rootOps(oneOf("either", op("Add"), op("Gelu", undefined, { domain: "com.microsoft" })))!].sort(),
    ["::Add", "com.microsoft::Gelu"],
  );
  assert.deepEqual([...rootOps(skippable(op("MatMul"), ["Cast", "Reshape"]))!].sort(), [
    "::Cast",
    "::MatMul",
    "::Reshape",
  ]);
  assert.equal(rootOps(any()), undefined, "a pattern rooted at any value indexes every node");
  const isRoot = rootIndex([{ name: "r", pattern: op(["Add", "Sub"]), rewrite: () => ({ decline: "no" }) }]);
  const node = (opType: string, domain = ""): Node => ({
    name: "n",
    opType,
    domain,
    inputs: [],
    outputs: [],
    attrs: {},
  });
  assert.equal(isRoot(node("Add")), true);
  assert.equal(isRoot(node("Sub")), true);
  assert.equal(isRoot(node("Mul")), false);
  assert.equal(isRoot(node("Add", "com.microsoft")), false);
});

test("rewrite driver: rules are tried only at indexed roots, and every candidate gets an outcome", () => {
  const b = new GraphBuilder();
  const x = b.input("x", "float32", [2]);
  const y = b.op("Neg", [b.op("Relu", [x])]);
  b.output(b.op("Relu", [y]), "float32");
  const graph = b.build();
  const tried: string[] = [];
  const outcomes = runRewritePass(graph, new GraphView(graph), {
    rules: [
      {
        name: "relu",
        pattern: op("Relu", [any("x")]),
        rewrite: (m) => {
          tried.push(m.root);
          return { decline: "test declines" };
        },
      },
    ],
    prefix: "t",
    context: () => undefined,
  });
  assert.equal(outcomes.length, 2, "two Relu roots, the Neg is never a candidate");
  assert.equal(tried.length, 2);
  assert.ok(outcomes.every((o) => o.node.opType === "Relu" && !o.applied && o.reason === "test declines"));
});
