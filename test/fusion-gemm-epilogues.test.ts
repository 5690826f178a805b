/**
 * The FusedGemm epilogues beyond the erf GELU (fusion-epilogues.test.ts has that one): the tanh GELU (ONNX Gelu
 * approximate = "tanh", com.microsoft FastGelu with and without its bias) and the residual Add after a GEMM (of
 * its result or of its GELU). Each form is fused by the pass, run by the JS reference, the native and the
 * WebAssembly (fallback) CPU kernels against onnxruntime-node on the unfused graph, and exported with
 * `--target onnxruntime`, which onnxruntime runs too. Residual fusion is exact: the fused graph gives the
 * unfused graph's float32 outputs bit for bit on each CPU kernel family. Each decline says why.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { CpuBackend } from "../src/backends/cpu/backend.js";
import type { CpuKernels } from "../src/backends/cpu/defaults.js";
import type { CpuPreparedGraph } from "../src/backends/cpu/prepared-graph.js";
import { planGraph, runGraph } from "../src/engine/executor.js";
import { GraphBuilder } from "../src/ir/builder.js";
import type { Graph, Node } from "../src/ir/graph.js";
import { Tensor } from "../src/ir/tensor.js";
import { fuseGemmActivationReport } from "../src/passes/gemm-activation.js";
import { optimizeGraph } from "../src/passes/index.js";
import { toOnnxruntime } from "../src/passes/to-onnxruntime.js";
import { type Form, FUSED, feedsOf, graphOf, K, N, S, values } from "./fused-gemm-forms.js";
import { maxAbsDiff } from "./support/compare.js";
import { runOnOnnxruntime } from "./support/ort.js";

const fusedNodes = (g: Graph): Node[] => g.nodes.filter((n) => n.opType === "FusedGemm");

async function runCpu(graph: Graph, feeds: Record<string, Tensor>, cpuKernels: CpuKernels, bind = true) {
  const backend = new CpuBackend({ threads: 2, cpuKernels, bind });
  try {
    const prepared = (await backend.prepare(graph, planGraph(graph))) as CpuPreparedGraph;
    const first = (await prepared.run(feeds, ["y"])).y!;
    const second = (await prepared.run(feeds, ["y"])).y!;
    return { first, second, native: !!backend.native, stats: prepared.bound?.stats };
  } finally {
    await backend.dispose();
  }
}

function assertIdentical(a: Tensor, b: Tensor, what: string): void {
  assert.deepEqual([...a.dims], [...b.dims], what);
  for (let i = 0; i < a.size; i++)
    if (!Object.is(a.data[i], b.data[i])) assert.fail(`${what}: [${i}] ${a.data[i]} vs ${b.data[i]}`);
}

for (const [label, form, want] of FUSED) {
  test(`FusedGemm epilogue, ${label}: one node; reference, native and fallback match onnxruntime; the export too`, async () => {
    const graph = graphOf(form);
    const feeds = feedsOf(form);
    const { graph: fused } = optimizeGraph(graph);
    const nodes = fusedNodes(fused);
    assert.equal(nodes.length, 1, fused.nodes.map((n) => n.opType).join(" "));
    const node = nodes[0]!;
    assert.equal(
      node.attrs.activation?.type === "string" ? node.attrs.activation.value : undefined,
      want.activation,
    );
    assert.equal(!!node.inputs[3], want.residual, `inputs ${node.inputs}`);
    assert.equal(!!node.inputs[2], want.bias);
    // Nothing of the epilogue is left beside it (the Flatten and Reshape around it are the layer's own).
    const left = fused.nodes.filter((n) => !["FusedGemm", "Flatten", "Reshape"].includes(n.opType));
    assert.deepEqual(
      left.map((n) => n.opType),
      [],
    );
    const [ortOut] = Object.values(await runOnOnnxruntime(graph, feeds));
    const tol = 2e-5;
    const ref = runGraph(fused, feeds).get("y")!;
    assert.ok(maxAbsDiff(ref, ortOut!) <= tol, `reference vs onnxruntime ${maxAbsDiff(ref, ortOut!)}`);
    for (const kernels of ["native", "wasm", "js"] as const) {
      const { first, second } = await runCpu(fused, feeds, kernels);
      assert.ok(maxAbsDiff(first, ortOut!) <= tol, `${kernels} vs onnxruntime ${maxAbsDiff(first, ortOut!)}`);
      assertIdentical(second, first, `${kernels}: the bound second run`);
    }
    const exported = toOnnxruntime(fused);
    assert.ok(!exported.graph.nodes.some((n) => n.domain === "mhafuse"));
    const note = exported.notes.find((n) => /FusedGemm →/.test(n))!;
    if (want.activation) assert.match(note, new RegExp(`com\\.microsoft\\.${want.activation}`));
    if (want.residual) assert.match(note, /\+ Add$/);
    const fromOrt = (await runOnOnnxruntime(exported.graph, feeds)).y!;
    assert.ok(maxAbsDiff(fromOrt, ortOut!) <= tol, `export vs onnxruntime ${maxAbsDiff(fromOrt, ortOut!)}`);
  });
}

for (const [label, form] of FUSED.filter(([, f]) => f.residual && f.act !== "fastgelu")) {
  test(`FusedGemm residual is exact, ${label}: the fused graph gives the unfused one's outputs bit for bit`, async () => {
    const graph = graphOf(form);
    const feeds = feedsOf(form);
    const fused = optimizeGraph(graph).graph;
    const unfused = optimizeGraph(graph, { disabledPasses: ["fuse-gemm-activation"] }).graph;
    assert.equal(fusedNodes(unfused).length, 0);
    for (const kernels of ["native", "wasm", "js"] as const)
      for (const bind of [true, false]) {
        const a = await runCpu(fused, feeds, kernels, bind);
        const b = await runCpu(unfused, feeds, kernels, bind);
        assertIdentical(a.first, b.first, `${kernels}, bind ${bind}`);
        assertIdentical(a.second, b.second, `${kernels}, bind ${bind}, second run`);
        if (kernels === "native" && bind && a.native)
          assert.ok(a.stats!.gemmBinds >= 1, "the FusedGemm with a residual is bound");
      }
  });
}

const DECLINES: [string, Form, RegExp][] = [
  ["the Add broadcasts h over the batch", { residual: true, hShape: [S, N] }, /broadcasts/],
  ["float16 (the Add rounds the GEMM's result first)", { residual: true, dtype: "float16" }, /float16/],
];

for (const [label, form, why] of DECLINES) {
  test(`FusedGemm residual is not fused when ${label}, with the reason; the result still matches`, async () => {
    const graph = graphOf(form);
    const { graph: out } = optimizeGraph(graph);
    assert.equal(fusedNodes(out).length, 0);
    const outcomes = fuseGemmActivationReport(out);
    assert.equal(outcomes.length, 1, JSON.stringify(outcomes));
    assert.equal(outcomes[0]!.fused, false);
    assert.match(outcomes[0]!.reason!, why);
    const feeds = feedsOf(form);
    const [want] = Object.values(await runOnOnnxruntime(graph, feeds));
    const bound = form.dtype === "float16" ? 1e-2 : 1e-5;
    assert.ok(maxAbsDiff(runGraph(out, feeds).get("y")!, want!) <= bound);
  });
}

test("a residual Add with unknown dims is fused; a broadcast at run time is a typed OpError, never a wrong number", () => {
  const b = new GraphBuilder({ opset: 17 });
  const x = b.input("x", "float32", [null, 4]);
  const h = b.input("h", "float32", [null, 3]);
  const W = b.init(new Tensor("float32", values(12, 5), [4, 3]));
  const c = b.init(new Tensor("float32", values(3, 6), [3]));
  b.output(b.op("Add", [b.op("Gemm", [x, W, c]), h], {}, { outputs: ["y"] }), "float32");
  const graph = b.build();
  const { graph: out } = optimizeGraph(graph);
  assert.equal(fusedNodes(out).length, 1);
  // Same shape at run time (a residual connection): the fused node's numbers are the graph's.
  const x2 = new Tensor("float32", values(8, 7), [2, 4]);
  const same = { x: x2, h: new Tensor("float32", values(6, 8), [2, 3]) };
  assert.deepEqual(runGraph(out, same).get("y")!.data, runGraph(graph, same).get("y")!.data);
  // h fed as [1, 3]: the unfused Add would broadcast it; the fused node refuses it, saying why and what to do.
  const broadcast = { x: x2, h: new Tensor("float32", values(3, 8), [1, 3]) };
  assert.throws(
    () => runGraph(out, broadcast),
    (e: Error & { code?: string }) =>
      e.code === "OP_INVALID" && /residual must be \[2,3\].*fuse-gemm-activation disabled/.test(e.message),
  );
  const { graph: unfused } = optimizeGraph(graph, { disabledPasses: ["fuse-gemm-activation"] });
  assert.deepEqual(runGraph(unfused, broadcast).get("y")!.data, runGraph(graph, broadcast).get("y")!.data);
});

test("FastGelu's bias over a Gemm that has a bias is not fused (two roundings), with the reason", () => {
  const b = new GraphBuilder({ opset: 17 });
  const x = b.input("x", "float32", [7, K]);
  const W = b.init(new Tensor("float32", values(K * N, 7, 0.4), [K, N]));
  const c = b.init(new Tensor("float32", values(N, 3, 0.5), [N]));
  const bias = b.init(new Tensor("float32", values(N, 11, 0.5), [N]));
  const y = b.op("FastGelu", [b.op("Gemm", [x, W, c]), bias], {}, { domain: "com.microsoft" });
  b.output(y, "float32");
  const { graph } = optimizeGraph(b.build());
  assert.equal(fusedNodes(graph).length, 0);
  const outcomes = fuseGemmActivationReport(graph);
  assert.equal(outcomes.length, 1);
  assert.match(outcomes[0]!.reason!, /FastGelu adds a bias to a Gemm that has one/);
});

test("FusedGemm's residual must be [M, N]: another shape is an OpError naming it", () => {
  const b = new GraphBuilder({ opset: 17 });
  const a = b.input("a", "float32", [2, 3]);
  const r = b.input("r", "float32", [1, 4]);
  const w = b.init(new Tensor("float32", values(12, 3), [3, 4]));
  b.output(b.op("FusedGemm", [a, w, "", r], {}, { domain: "mhafuse", outputs: ["y"] }), "float32");
  assert.throws(
    () =>
      runGraph(b.build(), {
        a: new Tensor("float32", values(6, 1), [2, 3]),
        r: new Tensor("float32", values(4, 2), [1, 4]),
      }),
    (e: Error & { code?: string }) => e.code === "OP_INVALID" && /residual must be \[2,4\]/.test(e.message),
  );
});
