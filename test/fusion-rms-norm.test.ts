import assert from "node:assert/strict";
import { test } from "node:test";
import { runGraph } from "../src/engine/executor.js";
import { GraphBuilder } from "../src/ir/builder.js";
import type { Graph } from "../src/ir/graph.js";
import { Tensor } from "../src/ir/tensor.js";
import { optimizeGraph } from "../src/passes/index.js";
import { fuseRmsNormReport } from "../src/passes/rms-norm.js";
import { toOnnxruntime } from "../src/passes/to-onnxruntime.js";
import { maxAbsDiff } from "./support/compare.js";
import { runOnOnnxruntime } from "./support/ort.js";

// RMSNorm spelled out as exporters write it becomes one SimplifiedLayerNormalization; each form is run by
// mhafuse fused and by onnxruntime-node on the unfused graph and on the fused graph.

type Dt = "float32" | "float16";

interface Form {
  square?: "pow" | "mul";
  recip?: "div" | "reciprocal" | "one-over";
  casts?: boolean;
  weightFirst?: boolean;
  opset?: number;
  /** Overrides for the decline cases. */
  axes?: number[];
  epsInput?: boolean;
  weight?: "input" | "short" | "2d";
  keepdims?: number;
}

const D = 16;

function rmsGraph(dt: Dt, f: Form = {}): Graph {
  const opset = f.opset ?? 17;
  const b = new GraphBuilder({ opset });
  // x is a computed value (as the residual stream is), so that the graph input is not x itself.
  const x0 = b.op("Add", [b.input("x", dt, [2, 3, D]), b.const(dt, 0.125)]);
  const x = f.casts ? b.op("Cast", [x0], { to: dt === "float16" ? 10 : 1 }) : x0;
  const sq = f.square === "mul" ? b.op("Mul", [x, x]) : b.op("Pow", [x, b.const(dt, 2)]);
  const axes = f.axes ?? [-1];
  const mean =
    opset >= 18
      ? b.op("ReduceMean", [sq, b.init(new Tensor("int64", axes, [axes.length]))], {
          keepdims: f.keepdims ?? 1,
        })
      : b.op("ReduceMean", [sq], { axes, keepdims: f.keepdims ?? 1 });
  const eps = f.epsInput ? b.input("eps", dt, [1]) : b.const(dt, 1e-5);
  const rms = b.op("Sqrt", [b.op("Add", [mean, eps])]);
  const normed =
    f.recip === "reciprocal"
      ? b.op("Mul", [x, b.op("Reciprocal", [rms])])
      : f.recip === "one-over"
        ? b.op("Mul", [x, b.op("Div", [b.const(dt, 1), rms])])
        : b.op("Div", [x, rms]);
  const back = f.casts ? b.op("Cast", [normed], { to: dt === "float16" ? 10 : 1 }) : normed;
  const wValues = Array.from({ length: D }, (_, i) => 0.5 + i / 8);
  const w =
    f.weight === "input"
      ? b.input("w", dt, [D])
      : f.weight === "short"
        ? b.init(new Tensor(dt, wValues.slice(0, 4), [4]))
        : f.weight === "2d"
          ? b.init(new Tensor(dt, wValues, [1, D]))
          : b.init(new Tensor(dt, wValues, [D]));
  const y = f.weightFirst ? b.op("Mul", [w, back]) : b.op("Mul", [back, w]);
  b.output(b.op("Identity", [y], {}, { outputs: ["y"] }), dt);
  return b.build();
}

function feedsOf(dt: Dt, f: Form = {}): Record<string, Tensor> {
  const x = Array.from({ length: 2 * 3 * D }, (_, i) => Math.sin(i * 0.7) * (1 + (i % 5)));
  const out: Record<string, Tensor> = { x: new Tensor(dt, x, [2, 3, D]) };
  if (f.epsInput) out.eps = new Tensor(dt, [1e-5], [1]);
  if (f.weight === "input")
    out.w = new Tensor(
      dt,
      Array.from({ length: D }, (_, i) => 0.5 + i / 8),
      [D],
    );
  return out;
}

async function runOrt(graph: Graph, feeds: Record<string, Tensor>): Promise<Tensor> {
  return (await runOnOnnxruntime(graph, feeds)).y!;
}

const FORMS: [string, Form][] = [
  ["x / √(mean(Pow(x, 2)) + ε) · w", {}],
  ["x · Reciprocal(√…), x·x, weight first", { recip: "reciprocal", square: "mul", weightFirst: true }],
  ["HF: Cast, x · (1 / √…), Cast back, weight first", { casts: true, recip: "one-over", weightFirst: true }],
  ["ReduceMean axes as an input (opset 18)", { opset: 18, recip: "one-over" }],
  ["ReduceMean axes [2] (the last axis, positive)", { axes: [2] }],
  ["weight [1, D]", { weight: "2d", casts: true }],
];

for (const dt of ["float32", "float16"] as const) {
  for (const [label, form] of FORMS) {
    test(`RMSNorm ${label} (${dt}) becomes one SimplifiedLayerNormalization matching onnxruntime`, async () => {
      const graph = rmsGraph(dt, form);
      const { graph: fused, stats } = optimizeGraph(graph);
      assert.equal(stats.find((s) => s.pass === "fuse-rms-norm")?.changed, 1);
      const ops = fused.nodes.map((n) => n.opType);
      assert.ok(ops.includes("SimplifiedLayerNormalization"), ops.join(","));
      for (const gone of ["Pow", "ReduceMean", "Sqrt", "Reciprocal", "Div", "Cast"])
        assert.ok(!ops.includes(gone), ops.join(","));
      const node = fused.nodes.find((n) => n.opType === "SimplifiedLayerNormalization")!;
      assert.equal(node.domain, "");
      assert.deepEqual(node.attrs.axis, { type: "int", value: -1 });
      assert.deepEqual(node.attrs.stash_type, { type: "int", value: 1 });
      const feeds = feedsOf(dt, form);
      const want = await runOrt(graph, feeds);
      const got = runGraph(fused, feeds).get("y")!;
      assert.equal(got.type, dt);
      // float32: the same arithmetic; float16: one rounding of the output against onnxruntime's chain, which
      // also computes the statistics in float32 (Pow/ReduceMean/Sqrt have no float16 CPU kernels), |y| < 8.
      const bound = dt === "float32" ? 1e-5 : 1e-2;
      assert.ok(maxAbsDiff(got, want) <= bound, `max |diff| ${maxAbsDiff(got, want)}`);
      // onnxruntime runs the fused graph (what `optimize --target onnxruntime` writes) to the same numbers.
      const exported = await runOrt(toOnnxruntime(fused).graph, feeds);
      assert.ok(maxAbsDiff(exported, got) <= (dt === "float32" ? 1e-5 : 4e-3));
    });
  }
}

const DECLINES: [string, Form, RegExp][] = [
  ["ε is a graph input", { epsInput: true }, /ε 'eps' is not a scalar constant/],
  ["ReduceMean over axis 1", { axes: [1] }, /axes \[1\] are not the last axis/],
  ["ReduceMean over axes [1, 2] (opset 18)", { opset: 18, axes: [1, 2] }, /are not the last axis/],
  ["ReduceMean with keepdims = 0", { keepdims: 0 }, /keepdims = 0/],
  ["the weight is a graph input", { weight: "input" }, /weight 'w' is not a constant/],
  ["the weight is not of the last dim", { weight: "short" }, /weight has shape \[4\], not \[16\]/],
];

for (const [label, form, why] of DECLINES) {
  test(`RMSNorm is not fused when ${label}, with the reason`, () => {
    const graph = rmsGraph("float32", form);
    const g = rmsGraph("float32", form);
    const outcomes = fuseRmsNormReport(g);
    assert.equal(outcomes.length, 1, JSON.stringify(outcomes));
    assert.equal(outcomes[0]!.fused, false);
    assert.match(outcomes[0]!.reason!, why);
    assert.ok(!g.nodes.some((n) => n.opType === "SimplifiedLayerNormalization"));
    // A declined chain still runs as written. (keepdims = 0 and a short weight make a graph that no longer
    // broadcasts, so only run the others.)
    if (form.keepdims === undefined && form.weight !== "short" && !form.axes?.includes(1)) {
      const feeds = feedsOf("float32", form);
      const { graph: out } = optimizeGraph(graph);
      assert.ok(maxAbsDiff(runGraph(out, feeds).get("y")!, runGraph(graph, feeds).get("y")!) <= 1e-7);
    }
  });
}

test("RMSNorm is not fused when an intermediate is read elsewhere", () => {
  const graph = rmsGraph("float32");
  const sqrt = graph.nodes.find((n) => n.opType === "Sqrt")!;
  graph.outputs.push({ name: sqrt.outputs[0]!, dtype: "float32" });
  const outcomes = fuseRmsNormReport(graph);
  assert.equal(outcomes[0]!.fused, false);
  assert.match(outcomes[0]!.reason!, /graph output/);
});
