/**
 * The two epilogue fusions after linear-bias: residual Add → LayerNormalization becomes
 * com.microsoft.SkipLayerNormalization, Gemm (→ Reshape) → GELU becomes mhafuse.FusedGemm. Each form is run
 * fused by mhafuse and unfused by onnxruntime-node, and the `--target onnxruntime` export by onnxruntime too;
 * each decline says why.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { runGraph } from "../src/engine/executor.js";
import { InferenceSession } from "../src/engine/session.js";
import { GraphBuilder } from "../src/ir/builder.js";
import type { Graph } from "../src/ir/graph.js";
import { Tensor } from "../src/ir/tensor.js";
import { loadModel } from "../src/onnx/index.js";
import { fuseGemmActivationReport } from "../src/passes/gemm-activation.js";
import { optimizeGraph } from "../src/passes/index.js";
import { fuseSkipLayerNormReport } from "../src/passes/skip-layer-norm.js";
import { toOnnxruntime } from "../src/passes/to-onnxruntime.js";
import { maxAbsDiff } from "./support/compare.js";
import { runOnOnnxruntime } from "./support/ort.js";

type Dt = "float32" | "float16";
const S = 5;
const D = 24;

const values = (n: number, seed: number, scale = 1) =>
  Array.from({ length: n }, (_, i) => Math.sin((i + 1) * 0.37 * seed) * scale);

async function runOrt(graph: Graph, feeds: Record<string, Tensor>, names: string[]): Promise<Tensor[]> {
  const out = await runOnOnnxruntime(graph, feeds);
  return names.map((n) => out[n]!);
}

interface ResidualForm {
  dtype?: Dt;
  /** x's shape (default [2, S, D]). */
  shape?: number[];
  /** skip's shape (default x's). */
  skipShape?: number[];
  /** The sum is a graph output too (pre-LN style): it leaves through output 3. */
  sumOut?: boolean;
  beta?: boolean;
  axis?: number;
  stash?: number;
}

/** y = LayerNorm(x + skip), x and skip computed (Mul by constants) as a residual stream is. */
function residualGraph(f: ResidualForm = {}): Graph {
  const dt = f.dtype ?? "float32";
  const shape = f.shape ?? [2, S, D];
  const b = new GraphBuilder({ opset: 17 });
  const x = b.op("Mul", [b.input("x", dt, shape), b.const(dt, 1.5)]);
  const skip = b.op("Mul", [b.input("skip", dt, f.skipShape ?? shape), b.const(dt, 0.5)]);
  const sum = b.op("Add", [x, skip], {}, { outputs: ["sum"] });
  const d = shape[shape.length - 1]!;
  const gamma = b.init(
    new Tensor(
      dt,
      values(d, 3, 0.5).map((v) => v + 1),
      [d],
    ),
  );
  const inputs = [sum, gamma];
  if (f.beta !== false) inputs.push(b.init(new Tensor(dt, values(d, 5, 0.2), [d])));
  const attrs: Record<string, number> = { epsilon: 1e-5 };
  if (f.axis !== undefined) attrs.axis = f.axis;
  if (f.stash !== undefined) attrs.stash_type = f.stash;
  b.output(b.op("LayerNormalization", inputs, attrs, { outputs: ["y"] }), dt);
  if (f.sumOut) b.output("sum", dt);
  return b.build();
}

function residualFeeds(f: ResidualForm = {}): Record<string, Tensor> {
  const dt = f.dtype ?? "float32";
  const shape = f.shape ?? [2, S, D];
  const skipShape = f.skipShape ?? shape;
  const n = (s: number[]) => s.reduce((a, c) => a * c, 1);
  return {
    x: new Tensor(dt, values(n(shape), 1, 3), shape),
    skip: new Tensor(dt, values(n(skipShape), 2, 2), skipShape),
  };
}

const RESIDUAL_FORMS: [string, ResidualForm][] = [
  ["[B, S, D] float32", {}],
  ["[tokens, D] float32, no beta", { shape: [7, D], beta: false }],
  ["[B, S, D] float16", { dtype: "float16" }],
  ["the sum read elsewhere (input_skip_bias_sum)", { sumOut: true }],
  ["axis 2 (the last, positive)", { axis: 2 }],
];

for (const [label, form] of RESIDUAL_FORMS) {
  test(`residual Add → LayerNorm, ${label}: one SkipLayerNormalization, matching onnxruntime`, async () => {
    const graph = residualGraph(form);
    const { graph: fused, stats } = optimizeGraph(graph);
    assert.equal(stats.find((s) => s.pass === "fuse-skip-layer-norm")?.changed, 1);
    const node = fused.nodes.find((n) => n.opType === "SkipLayerNormalization")!;
    assert.equal(node.domain, "com.microsoft");
    assert.ok(!fused.nodes.some((n) => n.opType === "Add" || n.opType === "LayerNormalization"));
    assert.equal(node.outputs[3] ?? "", form.sumOut ? "sum" : "");
    const names = form.sumOut ? ["y", "sum"] : ["y"];
    const feeds = residualFeeds(form);
    const want = await runOrt(graph, feeds, names);
    const got = runGraph(fused, feeds);
    const bound = form.dtype === "float16" ? 1e-2 : 1e-5;
    names.forEach((n, i) => {
      assert.equal(got.get(n)!.type, form.dtype ?? "float32");
      assert.ok(
        maxAbsDiff(got.get(n)!, want[i]!) <= bound,
        `${n}: max |diff| ${maxAbsDiff(got.get(n)!, want[i]!)}`,
      );
    });
    // onnxruntime runs the fused node as is (`--target onnxruntime` passes it through).
    const exported = await runOrt(toOnnxruntime(fused).graph, feeds, names);
    for (const [i, n] of names.entries()) assert.ok(maxAbsDiff(exported[i]!, got.get(n)!) <= bound, n);
  });
}

const RESIDUAL_DECLINES: [string, ResidualForm, RegExp][] = [
  ["a broadcast Add", { skipShape: [S, D] }, /differ \(a broadcast Add\)/],
  ["rank 4", { shape: [1, 2, S, D] }, /rank 4, not 2 or 3/],
  ["the norm over two axes", { axis: 1 }, /axis 1 is not the last/],
  ["float16 statistics (stash_type 0)", { stash: 0 }, /stash_type 0/],
];

for (const [label, form, why] of RESIDUAL_DECLINES) {
  test(`residual Add → LayerNorm is not fused for ${label}, with the reason`, () => {
    const graph = residualGraph(form);
    const outcomes = fuseSkipLayerNormReport(graph);
    assert.equal(outcomes.length, 1, JSON.stringify(outcomes));
    assert.equal(outcomes[0]!.fused, false);
    assert.match(outcomes[0]!.reason!, why);
    assert.ok(!graph.nodes.some((n) => n.opType === "SkipLayerNormalization"));
  });
}

test("residual Add → LayerNorm with unknown dims is fused; where they broadcast at run time it computes what the Add did", async () => {
  // Real exports lose the sequence length's name on the residual stream: [batch, ?, H] + [batch, ?, H].
  const b = new GraphBuilder({ opset: 17 });
  const x = b.input("x", "float32", [null, D]);
  const skip = b.input("skip", "float32", [null, D]);
  const gamma = b.init(new Tensor("float32", values(D, 3, 0.5), [D]));
  b.output(b.op("LayerNormalization", [b.op("Add", [x, skip]), gamma], {}, { outputs: ["y"] }), "float32");
  const graph = b.build();
  const { graph: out } = optimizeGraph(graph);
  assert.ok(out.nodes.some((n) => n.opType === "SkipLayerNormalization"));
  for (const [xRows, skipRows] of [
    [3, 3],
    [1, 3],
    [3, 1],
  ]) {
    const feeds = {
      x: new Tensor("float32", values(xRows! * D, 1), [xRows!, D]),
      skip: new Tensor("float32", values(skipRows! * D, 2), [skipRows!, D]),
    };
    const want = runGraph(graph, feeds).get("y")!;
    assert.ok(maxAbsDiff(runGraph(out, feeds).get("y")!, want) <= 1e-6, `[${xRows}, D] + [${skipRows}, D]`);
    const session = InferenceSession.fromGraph(out);
    const got = (await session.run(feeds)).y!;
    await session.release();
    assert.deepEqual([...got.dims], [...want.dims]);
    assert.ok(maxAbsDiff(got, want) <= 1e-6, `session: [${xRows}, D] + [${skipRows}, D]`);
  }
});

interface GeluForm {
  dtype?: Dt;
  /** x [2, S, K] through linear-bias's Flatten → Gemm → Reshape (default), or a 2-D x straight into Gemm. */
  flat?: boolean;
  /** ONNX Gelu (opset 20) instead of the com.microsoft one; `approximate` for it. */
  onnx?: boolean;
  approximate?: string;
  /** The pre-activation is a graph output too. */
  preOut?: boolean;
}

const K = 16;
const N = 40;

/** y = GELU(x·W + b) as exporters write it (MatMul + Add, then linear-bias makes the Gemm). */
function geluGraph(f: GeluForm = {}): Graph {
  const dt = f.dtype ?? "float32";
  const b = new GraphBuilder({ opset: f.onnx ? 20 : 17 });
  const x = b.input("x", dt, f.flat ? [7, K] : [2, S, K]);
  const W = b.init(new Tensor(dt, values(K * N, 7, 0.4), [K, N]));
  const bias = b.init(new Tensor(dt, values(N, 11, 0.5), [N]));
  const pre = b.op("Add", [b.op("MatMul", [x, W]), bias], {}, { outputs: ["pre"] });
  const y = f.onnx
    ? b.op("Gelu", [pre], f.approximate ? { approximate: f.approximate } : {}, { outputs: ["y"] })
    : b.op("Gelu", [pre], {}, { domain: "com.microsoft", outputs: ["y"] });
  b.output(y, dt);
  if (f.preOut) b.output("pre", dt);
  return b.build();
}

const geluFeeds = (f: GeluForm = {}): Record<string, Tensor> => {
  const shape = f.flat ? [7, K] : [2, S, K];
  return {
    x: new Tensor(
      f.dtype ?? "float32",
      values(
        shape.reduce((a, c) => a * c, 1),
        13,
        2,
      ),
      shape,
    ),
  };
};

const GELU_FORMS: [string, GeluForm][] = [
  ["[B, S, K] (through the Reshape), com.microsoft.Gelu", {}],
  ["2-D x, com.microsoft.Gelu", { flat: true }],
  ["ONNX Gelu (opset 20, erf form)", { onnx: true }],
  ["float16", { dtype: "float16" }],
];

for (const [label, form] of GELU_FORMS) {
  test(`Gemm → GELU, ${label}: one mhafuse.FusedGemm, matching onnxruntime`, async () => {
    const graph = geluGraph(form);
    const { graph: fused, stats } = optimizeGraph(graph);
    assert.equal(stats.find((s) => s.pass === "fuse-gemm-activation")?.changed, 1);
    const node = fused.nodes.find((n) => n.opType === "FusedGemm")!;
    assert.equal(node.domain, "mhafuse");
    assert.deepEqual(node.attrs.activation, { type: "string", value: "Gelu" });
    assert.ok(!fused.nodes.some((n) => n.opType === "Gelu" || n.opType === "Gemm"));
    const feeds = geluFeeds(form);
    const [want] = await runOrt(graph, feeds, ["y"]);
    const got = runGraph(fused, feeds).get("y")!;
    const bound = form.dtype === "float16" ? 1e-2 : 1e-5;
    assert.ok(maxAbsDiff(got, want!) <= bound, `max |diff| ${maxAbsDiff(got, want!)}`);
    // The export lowers it back to Gemm + com.microsoft.Gelu, which onnxruntime runs to the same numbers.
    const exported = toOnnxruntime(fused);
    assert.ok(exported.notes.some((n) => /FusedGemm → Gemm \+ com.microsoft.Gelu/.test(n)));
    assert.ok(!exported.graph.nodes.some((n) => n.domain === "mhafuse"));
    const [fromOrt] = await runOrt(exported.graph, feeds, ["y"]);
    assert.ok(maxAbsDiff(fromOrt!, got) <= bound);
  });
}

const GELU_DECLINES: [string, GeluForm, RegExp][] = [
  ["the pre-activation is read elsewhere", { preOut: true }, /graph output/],
];

test("Gemm → GELU (tanh form, ONNX Gelu approximate = tanh) becomes a FastGelu FusedGemm (test/fusion-gemm-epilogues.test.ts has the rest)", async () => {
  const form: GeluForm = { onnx: true, approximate: "tanh" };
  const graph = geluGraph(form);
  const { graph: out } = optimizeGraph(graph);
  const fused = out.nodes.filter((n) => n.opType === "FusedGemm");
  assert.equal(fused.length, 1);
  assert.deepEqual(fused[0]!.attrs.activation, { type: "string", value: "FastGelu" });
  assert.ok(!out.nodes.some((n) => n.opType === "Gelu" || n.opType === "Gemm"));
  const [want] = await runOrt(graph, geluFeeds(form), ["y"]);
  assert.ok(maxAbsDiff(runGraph(out, geluFeeds(form)).get("y")!, want!) <= 1e-5);
});

for (const [label, form, why] of GELU_DECLINES) {
  test(`Gemm → GELU is not fused when ${label}, with the reason`, () => {
    // The pipeline's result keeps Gemm → Gelu; the pass, run on it again, says why.
    const { graph } = optimizeGraph(geluGraph(form));
    assert.ok(graph.nodes.some((n) => n.opType === "Gemm"));
    assert.ok(!graph.nodes.some((n) => n.opType === "FusedGemm"));
    const outcomes = fuseGemmActivationReport(graph);
    assert.equal(outcomes.length, 1, JSON.stringify(outcomes));
    assert.equal(outcomes[0]!.fused, false);
    assert.match(outcomes[0]!.reason!, why);
  });
}

test("mhafuse.FusedGemm with an unknown activation is an OpError naming it", () => {
  const b = new GraphBuilder({ opset: 17 });
  const a = b.input("a", "float32", [2, 3]);
  const w = b.init(new Tensor("float32", values(12, 3), [3, 4]));
  b.output(
    b.op("FusedGemm", [a, w], { activation: "Relu" }, { domain: "mhafuse", outputs: ["y"] }),
    "float32",
  );
  const graph = b.build();
  assert.throws(
    () => runGraph(graph, { a: new Tensor("float32", values(6, 1), [2, 3]) }),
    (e: Error & { code?: string }) =>
      e.code === "OP_INVALID" &&
      /activation must be one of Gelu, FastGelu \(or absent\), got Relu/.test(e.message),
  );
  assert.throws(() => toOnnxruntime(graph), /activation must be one of Gelu, FastGelu/);
});

test("bert_eager fused: per layer two SkipLayerNormalization and one FusedGemm; no Add → LayerNorm or Gelu left", async () => {
  const model = await loadModel(
    new URL("../../shared/fixtures/onnx/bert_eager.onnx", import.meta.url).pathname,
  );
  const { graph } = optimizeGraph(model.graph);
  const count = (op: string) => graph.nodes.filter((n) => n.opType === op).length;
  const layers = count("QKVToContext");
  assert.ok(layers >= 1);
  assert.equal(count("SkipLayerNormalization"), 2 * layers);
  assert.equal(count("FusedGemm"), layers);
  assert.equal(count("Gelu"), 0);
  // The embeddings' LayerNorm reads a three-way sum of gathers: it stays as it is (no residual to fuse).
  assert.equal(count("LayerNormalization"), 1);
});

test("optimizeGraph disabledPasses leaves those passes out, and names the passes when one is unknown", () => {
  const graph = residualGraph();
  const { graph: out, stats } = optimizeGraph(graph, { disabledPasses: ["fuse-skip-layer-norm"] });
  assert.ok(!stats.some((s) => s.pass === "fuse-skip-layer-norm"));
  assert.ok(out.nodes.some((n) => n.opType === "LayerNormalization"));
  assert.ok(!out.nodes.some((n) => n.opType === "SkipLayerNormalization"));
  assert.throws(
    () => optimizeGraph(graph, { disabledPasses: ["fuse-everything"] }),
    (e: Error & { code?: string }) =>
      /unknown pass 'fuse-everything'/.test(e.message) && /fuse-gemm-activation/.test(e.message),
  );
});
