/**
 * mhafuse.FusedGemm's epilogues on the webgpu backend (lavapipe in CI): the tanh GELU (a map after the GEMM,
 * whose epilogue has the erf form only) and the residual input (in the GEMM's epilogue, or in that map), each
 * form of test/fused-gemm-forms.ts fused by the pass and run on the GPU with no fallback, against the reference.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { WebGpuBackend } from "../src/backends/webgpu/backend.js";
import type { WebGpuPreparedGraph } from "../src/backends/webgpu/graph/prepared-graph.js";
import { planGraph, runGraph } from "../src/engine/executor.js";
import { optimizeGraph } from "../src/passes/index.js";
import { FUSED, feedsOf, graphOf } from "./fused-gemm-forms.js";
import { maxAbsDiff } from "./support/compare.js";
import { gpuContext } from "./webgpu-helpers.js";

const backend = new WebGpuBackend();
const fp16 = new WebGpuBackend({ precision: "fp16" });
after(() => Promise.all([backend.dispose(), fp16.dispose()]));

for (const [label, form] of FUSED) {
  test(`webgpu FusedGemm epilogue, ${label}: on the GPU, matching the reference`, async (t) => {
    const ctx = await gpuContext();
    if (typeof ctx === "string") return t.skip(ctx);
    const { graph } = optimizeGraph(graphOf(form));
    const fused = graph.nodes.filter((n) => n.opType === "FusedGemm");
    assert.equal(fused.length, 1);
    const feeds = feedsOf(form);
    const want = runGraph(graph, feeds).get("y")!;
    const prepared = (await backend.prepare(graph, planGraph(graph))) as WebGpuPreparedGraph;
    for (let rep = 0; rep < 2; rep++) {
      const got = (await prepared.run(feeds, ["y"])).y!;
      const d = maxAbsDiff(got, want);
      assert.ok(d <= 1e-4, `run ${rep}: max |diff| ${d}`);
    }
    assert.ok(prepared.onDevice.has(fused[0]!.name), "the FusedGemm ran on the GPU");
    assert.deepEqual(backend.fallbacks(), []);
    // fp16 storage (f32 math): the residual is f16 like the GEMM's output, the tanh map reads and writes f16.
    const half = (await fp16.prepare(graph, planGraph(graph))) as WebGpuPreparedGraph;
    const got16 = (await half.run(feeds, ["y"])).y!;
    let worst = 0;
    for (let i = 0; i < want.size; i++)
      worst = Math.max(
        worst,
        Math.abs(got16.getNumber(i) - want.getNumber(i)) / (1 + Math.abs(want.getNumber(i))),
      );
    assert.ok(worst <= 1e-2, `fp16: max relative |diff| ${worst}`);
    assert.ok(half.onDevice.has(fused[0]!.name), "fp16: the FusedGemm ran on the GPU");
  });
}
