import assert from "node:assert/strict";
import { test } from "node:test";
import * as ort from "onnxruntime-node";
import { runGraph } from "../src/engine/executor.js";
import { GraphBuilder } from "../src/ir/builder.js";
import type { DType } from "../src/ir/dtype.js";
import { floatToHalf, halfToFloat } from "../src/ir/float16.js";
import type { Dim, Graph } from "../src/ir/graph.js";
import { sizeOf, Tensor } from "../src/ir/tensor.js";
import { modelFromGraph, saveModel } from "../src/onnx/index.js";
import { optimizeGraph } from "../src/passes/index.js";
import { fuseLinearBiasReport } from "../src/passes/linear-bias.js";
import { toOnnxruntime } from "../src/passes/to-onnxruntime.js";
import { maxAbsDiff } from "./helpers.js";

/** Deterministic values in [-1, 1). */
function values(n: number, seed: number): number[] {
  let s = seed >>> 0 || 1;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

interface LinearOptions {
  xShape: Dim[];
  K: number;
  N: number;
  /** The bias as Add's first input. */
  biasFirst?: boolean;
  /** The MatMul output is a graph output too. */
  reuse?: boolean;
  /** W, or b, is a graph input instead of an initializer. */
  wInput?: boolean;
  bInput?: boolean;
  biasDims?: number[];
  dtype?: DType;
}

function linearGraph(o: LinearOptions): { graph: Graph; W: number[]; b: number[] } {
  const dtype = o.dtype ?? "float32";
  const g = new GraphBuilder({ opset: 17 });
  const x = g.input("x", dtype, o.xShape);
  const biasDims = o.biasDims ?? [o.N];
  const W = values(o.K * o.N, 7);
  const b = values(sizeOf(biasDims), 11);
  const w = o.wInput ? g.input("W", dtype, [o.K, o.N]) : g.init(new Tensor(dtype, W, [o.K, o.N]), "W");
  const bias = o.bInput ? g.input("b", dtype, biasDims) : g.init(new Tensor(dtype, b, biasDims), "b");
  const mm = g.op("MatMul", [x, w], {}, { outputs: ["mm"] });
  g.op("Add", o.biasFirst ? [bias, mm] : [mm, bias], {}, { outputs: ["y"] });
  g.output("y");
  if (o.reuse) g.output("mm");
  return { graph: g.build(), W, b };
}

function feed(dims: number[], seed = 3, dtype: DType = "float32"): Tensor {
  const v = values(sizeOf(dims), seed);
  return new Tensor(dtype, v, dims); // plain numbers are values for every dtype, float16 included
}

/** float64 reference of x·W + b (b [N] broadcast over rows). */
function reference(x: Tensor, W: number[], b: number[], K: number, N: number): Float64Array {
  const M = x.size / K;
  const out = new Float64Array(M * N);
  for (let i = 0; i < M; i++)
    for (let j = 0; j < N; j++) {
      let acc = b[j]!;
      for (let k = 0; k < K; k++) acc += x.getNumber(i * K + k) * W[k * N + j]!;
      out[i * N + j] = acc;
    }
  return out;
}

function maxDiff64(t: Tensor, ref: Float64Array): number {
  let m = 0;
  for (let i = 0; i < ref.length; i++) m = Math.max(m, Math.abs(t.getNumber(i) - ref[i]!));
  return m;
}

const ops = (g: Graph) => g.nodes.map((n) => n.opType);
const fusedCount = (stats: { pass: string; changed: number }[]) =>
  stats.find((s) => s.pass === "fuse-linear-bias")?.changed;

async function runOrt(graph: Graph, feeds: Record<string, Tensor>): Promise<ort.Tensor> {
  const session = await ort.InferenceSession.create(saveModel(modelFromGraph(graph)));
  const ortFeeds = Object.fromEntries(
    Object.entries(feeds).map(([k, t]) => [
      k,
      new ort.Tensor("float32", t.data as Float32Array, [...t.dims]),
    ]),
  );
  return (await session.run(ortFeeds)).y!;
}

const cases: { name: string; xShape: Dim[]; runs: number[][]; K: number; N: number; expect: string[] }[] = [
  { name: "rank-2 x", xShape: ["m", 24], runs: [[5, 24]], K: 24, N: 20, expect: ["Gemm"] },
  {
    name: "rank-3 symbolic [batch, seq, K]",
    xShape: ["batch", "seq", 24],
    // Empty batches and sequences too: the Reshape back takes its zeros as zeros (allowzero).
    runs: [
      [1, 3, 24],
      [2, 5, 24],
      [2, 0, 24],
      [0, 3, 24],
    ],
    K: 24,
    N: 20,
    expect: ["Flatten", "Gemm", "Shape", "Slice", "Concat", "Reshape"],
  },
  {
    name: "rank-3 with one symbolic dim [batch, 7, K]",
    xShape: ["batch", 7, 16],
    runs: [
      [1, 7, 16],
      [3, 7, 16],
    ],
    K: 16,
    N: 9,
    expect: ["Flatten", "Gemm", "Reshape"],
  },
  {
    name: "rank-4 concrete",
    xShape: [2, 3, 5, 16],
    runs: [[2, 3, 5, 16]],
    K: 16,
    N: 12,
    expect: ["Flatten", "Gemm", "Reshape"],
  },
  {
    name: "rank-4 symbolic",
    xShape: ["a", 3, "s", 16],
    runs: [
      [2, 3, 5, 16],
      [1, 3, 2, 16],
      [1, 3, 0, 16],
    ],
    K: 16,
    N: 12,
    expect: ["Flatten", "Gemm", "Shape", "Slice", "Concat", "Reshape"],
  },
  {
    // Large enough for the wasm kernel on both cores (beta = 1 through the shared scratch).
    name: "rank-3 BERT-like [batch, seq, 128] → 96",
    xShape: ["batch", "seq", 128],
    runs: [[4, 64, 128]],
    K: 128,
    N: 96,
    expect: ["Flatten", "Gemm", "Shape", "Slice", "Concat", "Reshape"],
  },
];

for (const c of cases) {
  for (const biasFirst of [false, true]) {
    test(`linear bias on ${c.name}, bias ${biasFirst ? "first" : "second"}: one Gemm, same numbers (mhafuse and onnxruntime)`, async () => {
      const { graph, W, b } = linearGraph({ xShape: c.xShape, K: c.K, N: c.N, biasFirst });
      const { graph: fused, stats } = optimizeGraph(graph);
      assert.equal(fusedCount(stats), 1);
      const got = ops(fused);
      for (const o of c.expect) assert.ok(got.includes(o), `${o} missing from ${got}`);
      assert.ok(!got.includes("MatMul") && !got.includes("Add"), got.join(","));
      if (!c.expect.includes("Shape")) assert.ok(!got.includes("Shape"), got.join(","));
      const exported = toOnnxruntime(fused).graph;
      for (const [i, dims] of c.runs.entries()) {
        const feeds = { x: feed(dims, 3 + i) };
        const y = runGraph(fused, feeds).get("y")!;
        const unfused = runGraph(graph, feeds).get("y")!;
        assert.deepEqual(y.dims, [...dims.slice(0, -1), c.N]);
        assert.ok(maxAbsDiff(y, unfused) <= 1e-5, `fused vs unfused ${maxAbsDiff(y, unfused)}`);
        const ref = reference(feeds.x, W, b, c.K, c.N);
        assert.ok(maxDiff64(y, ref) <= 1e-5, `vs float64 ${maxDiff64(y, ref)}`);
        const o = await runOrt(exported, feeds);
        assert.deepEqual([...o.dims], [...y.dims]);
        const ortT = new Tensor("float32", o.data as Float32Array, [...o.dims]);
        assert.ok(maxAbsDiff(ortT, y) <= 1e-5, `onnxruntime vs mhafuse ${maxAbsDiff(ortT, y)}`);
      }
    });
  }
}

test("linear bias [1, 1, N] is folded as a 1-D bias", () => {
  const { graph, W, b } = linearGraph({ xShape: ["batch", "seq", 8], K: 8, N: 6, biasDims: [1, 1, 6] });
  const { graph: fused, stats } = optimizeGraph(graph);
  assert.equal(fusedCount(stats), 1);
  const gemm = fused.nodes.find((n) => n.opType === "Gemm")!;
  assert.deepEqual(fused.initializers.get(gemm.inputs[2]!)?.dims, [6]);
  const feeds = { x: feed([2, 3, 8]) };
  assert.ok(maxDiff64(runGraph(fused, feeds).get("y")!, reference(feeds.x, W, b, 8, 6)) <= 1e-5);
});

test("linear bias in float16 is folded and stays within float16 rounding", () => {
  const { graph, W, b } = linearGraph({ xShape: ["batch", "seq", 16], K: 16, N: 8, dtype: "float16" });
  const { graph: fused, stats } = optimizeGraph(graph);
  assert.equal(fusedCount(stats), 1);
  const feeds = { x: feed([2, 3, 16], 5, "float16") };
  const y = runGraph(fused, feeds).get("y")!;
  assert.equal(y.type, "float16");
  const Wh = W.map((v) => halfToFloat(floatToHalf(v)));
  const bh = b.map((v) => halfToFloat(floatToHalf(v)));
  assert.ok(maxDiff64(y, reference(feeds.x, Wh, bh, 16, 8)) <= 1e-2);
  assert.ok(maxAbsDiff(y, runGraph(graph, feeds).get("y")!) <= 1e-2);
});

test("linear bias stays unfused when MatMul's output is read elsewhere, W or b is not constant, or b is not [N]", () => {
  const base = { xShape: ["batch", 4, 8] as Dim[], K: 8, N: 6 };
  const x = feed([2, 4, 8]);
  const variants: [string, LinearOptions, Record<string, Tensor>, RegExp][] = [
    ["MatMul output reused", { ...base, reuse: true }, {}, /read elsewhere/],
    ["W a graph input", { ...base, wInput: true }, { W: feed([8, 6], 9) }, /not a constant/],
    ["b a graph input", { ...base, bInput: true }, { b: feed([6], 9) }, /not a constant/],
    ["b over [seq, N]", { ...base, biasDims: [4, 6] }, {}, /bias has shape \[4,6\]/],
    ["b a scalar [1]", { ...base, biasDims: [1] }, {}, /bias has shape \[1\]/],
    ["b over rows [4, 1]", { ...base, N: 4, biasDims: [4, 1] }, {}, /bias has shape \[4,1\]/],
  ];
  for (const [name, opts, extra, reason] of variants) {
    const { graph } = linearGraph(opts);
    const { graph: out, stats } = optimizeGraph(graph);
    assert.equal(fusedCount(stats), 0, name);
    assert.ok(ops(out).includes("MatMul") && ops(out).includes("Add"), name);
    assert.ok(!ops(out).includes("Gemm"), name);
    const feeds = { x, ...extra };
    assert.ok(maxAbsDiff(runGraph(out, feeds).get("y")!, runGraph(graph, feeds).get("y")!) <= 1e-7, name);
    const [outcome] = fuseLinearBiasReport(optimizeGraph(graph, { level: "basic" }).graph);
    assert.equal(outcome?.fused, false, name);
    assert.match(outcome?.reason ?? "", reason, name);
  }
});

test("linear-bias fusion is off below the extended level and keeps attention fusion intact", () => {
  const { graph } = linearGraph({ xShape: ["m", 8], K: 8, N: 4 });
  const { stats } = optimizeGraph(graph, { level: "basic" });
  assert.equal(fusedCount(stats), undefined);
  const names = optimizeGraph(graph).stats.map((s) => s.pass);
  assert.ok(names.indexOf("fuse-attention") < names.indexOf("fuse-linear-bias"));
});
