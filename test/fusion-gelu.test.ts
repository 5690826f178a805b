import assert from "node:assert/strict";
import { test } from "node:test";
import { runGraph } from "../src/engine/executor.js";
import { GraphBuilder } from "../src/ir/builder.js";
import { Tensor } from "../src/ir/tensor.js";
import { optimizeGraph } from "../src/passes/index.js";
import { maxAbsDiff } from "./helpers.js";

type Spelling = "x*(1+erf)*half" | "x*half*(1+erf)" | "mul-inv-sqrt2";

function geluGraph(spelling: Spelling, opts: { reuse?: boolean; half?: number } = {}) {
  const b = new GraphBuilder({ opset: 17 });
  const x = b.op("Add", [b.input("x", "float32", ["n", 8]), b.const("float32", 0.25)]);
  const scaled =
    spelling === "mul-inv-sqrt2"
      ? b.op("Mul", [b.const("float32", Math.SQRT1_2), x])
      : b.op("Div", [x, b.const("float32", Math.SQRT2)]);
  const erf1 = b.op("Add", [b.const("float32", 1), b.op("Erf", [scaled])]);
  const half = b.const("float32", opts.half ?? 0.5);
  const y =
    spelling === "x*half*(1+erf)"
      ? b.op("Mul", [b.op("Mul", [x, half]), erf1])
      : b.op("Mul", [b.op("Mul", [x, erf1]), half]);
  b.output(b.op("Identity", [y], {}, { outputs: ["y"] }));
  if (opts.reuse) b.output(b.op("Identity", [erf1], {}, { outputs: ["also"] }));
  return b.build();
}

const feeds = {
  x: new Tensor(
    "float32",
    Array.from({ length: 24 }, (_, i) => (i - 12) / 3),
    [3, 8],
  ),
};
const exact = (v: number) => {
  // float64 reference: 0.5·v·(1 + erf(v/√2)) with erf from its Taylor series (|v/√2| < 3 here).
  const z = v / Math.SQRT2;
  let term = z;
  let sum = z;
  for (let n = 1; n < 80; n++) {
    term *= (-z * z) / n;
    sum += term / (2 * n + 1);
  }
  return 0.5 * v * (1 + (2 / Math.sqrt(Math.PI)) * sum);
};

for (const spelling of ["x*(1+erf)*half", "x*half*(1+erf)", "mul-inv-sqrt2"] as const) {
  test(`GELU spelled ${spelling} becomes one com.microsoft Gelu with the same numbers`, () => {
    const graph = geluGraph(spelling);
    const { graph: fused, stats } = optimizeGraph(graph);
    assert.equal(stats.find((s) => s.pass === "fuse-gelu")?.changed, 1);
    const ops = fused.nodes.map((n) => `${n.domain}.${n.opType}`);
    assert.ok(ops.includes("com.microsoft.Gelu"), ops.join(","));
    assert.ok(!ops.includes(".Erf"), ops.join(","));
    const got = runGraph(fused, feeds).get("y")!;
    assert.ok(maxAbsDiff(got, runGraph(graph, feeds).get("y")!) <= 1e-6);
    for (let i = 0; i < got.size; i++) {
      const v = feeds.x.getNumber(i) + 0.25;
      assert.ok(Math.abs(got.getNumber(i) - exact(v)) <= 1e-6, `at ${v}`);
    }
  });
}

test("GELU is not fused when an intermediate is read elsewhere or a constant is not ½", () => {
  for (const graph of [
    geluGraph("x*(1+erf)*half", { reuse: true }),
    geluGraph("x*(1+erf)*half", { half: 0.4 }),
  ]) {
    const { graph: out, stats } = optimizeGraph(graph);
    assert.equal(stats.find((s) => s.pass === "fuse-gelu")?.changed, 0);
    assert.ok(out.nodes.some((n) => n.opType === "Erf"));
    assert.ok(maxAbsDiff(runGraph(out, feeds).get("y")!, runGraph(graph, feeds).get("y")!) <= 1e-7);
  }
});

test("GELU fusion is off below the extended level", () => {
  const { stats } = optimizeGraph(geluGraph("x*(1+erf)*half"), { level: "basic" });
  assert.equal(
    stats.find((s) => s.pass === "fuse-gelu"),
    undefined,
  );
});
