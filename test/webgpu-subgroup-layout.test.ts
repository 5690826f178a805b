/**
 * Subgroups laid out in invocation order (WebGpuFeatures.subgroupsInOrder): WGSL does not promise that
 * subgroup_invocation_id is local_invocation_index mod the subgroup size, yet the row-group norms, the
 * subgroup attention and the tensor-core kernels without the subgroup_id builtin derive lanes and shuffle
 * partners from local_invocation_index. The device probes the layout once; where it does not hold those
 * kernels step aside for their subgroup-free fallbacks — tested here on a device stubbed to say so, a whole
 * BERT against onnxruntime's outputs.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { WebGpuBackend } from "../src/backends/webgpu/backend.js";
import { WebGpuContext } from "../src/backends/webgpu/context.js";
import {
  createWebGpuDevice,
  probeSubgroupOrder,
  type WebGpuDevice,
  type WebGpuFeatures,
} from "../src/backends/webgpu/device.js";
import { layerNorm } from "../src/backends/webgpu/kernels/norm.js";
import { planGraph } from "../src/engine/executor.js";
import { OpError } from "../src/errors.js";
import { loadModel } from "../src/onnx/index.js";
import { optimizeGraph } from "../src/passes/index.js";
import { assertClose } from "./support/compare.js";
import { FIXTURES, fixtureCases } from "./support/fixtures.js";
import { webgpuUnavailable } from "./webgpu-helpers.js";

async function device(t: { skip(msg: string): void }): Promise<WebGpuDevice | undefined> {
  try {
    return await createWebGpuDevice();
  } catch (e) {
    const reason = webgpuUnavailable(e);
    if (reason !== undefined) {
      t.skip(reason);
      return undefined;
    }
    throw e;
  }
}

test("the subgroup layout probe: in order on lavapipe (CI's adapter), and the device reports what it found", async (t) => {
  const gpu = await device(t);
  if (!gpu) return;
  try {
    if (!gpu.features.subgroups) {
      assert.equal(gpu.features.subgroupsInOrder, false);
      return t.skip("no subgroups");
    }
    const again = await probeSubgroupOrder(gpu.device);
    assert.equal(again, gpu.features.subgroupsInOrder);
    if (/llvmpipe|lavapipe/i.test(`${gpu.adapterInfo.description} ${gpu.adapterInfo.device}`))
      assert.equal(again, true, "lavapipe lays subgroups out in invocation order");
  } finally {
    gpu.dispose();
  }
});

test("subgroups not in invocation order: BERT runs on the subgroup-free kernels and matches onnxruntime", async (t) => {
  const gpu = await device(t);
  if (!gpu) return;
  // What a device whose probe failed reports.
  (gpu.features as WebGpuFeatures).subgroupsInOrder = false;
  const ctx = new WebGpuContext(gpu);
  class Stubbed extends WebGpuBackend {
    override context() {
      return Promise.resolve(ctx);
    }
  }
  const backend = new Stubbed({});
  try {
    // A forced row group needs the layout: an OpError, not rows mixed by the shuffles.
    const x = { buffer: ctx.pool.upload(new Float32Array(64)), dims: [2, 32] };
    const g = { buffer: ctx.pool.upload(new Float32Array(32).fill(1)), dims: [32] };
    assert.throws(
      () => layerNorm(ctx, ctx.recorder(), { x, gamma: g, out: x, epsilon: 1e-5, rowGroup: 8 }),
      (e: unknown) => e instanceof OpError && /invocation order/.test(e.message),
    );
    const model = await loadModel(`${FIXTURES}onnx/bert_eager.onnx`);
    const { graph } = optimizeGraph(model.graph);
    const prepared = await backend.prepare(graph, planGraph(graph));
    for (const c of fixtureCases("bert_eager")) {
      const got = await prepared.run(c.inputs, Object.keys(c.outputs));
      for (const [k, want] of Object.entries(c.outputs)) assertClose(got[k]!, want, 1e-4, k);
    }
    const keys = [...ctx.pipelines.keys()];
    // No row-group norm and no subgroup attention compiled; the fallbacks did the work.
    assert.ok(!keys.some((k) => /norm:rg/.test(k)), `row-group norms compiled: ${keys.join(" ")}`);
    assert.ok(!keys.some((k) => /^flash.*:sg1/.test(k)), `subgroup attention compiled: ${keys.join(" ")}`);
    assert.ok(
      keys.some((k) => /^flash/.test(k)),
      `an attention kernel ran: ${keys.join(" ")}`,
    );
    assert.ok(
      keys.some((k) => /layernorm/.test(k)),
      `a norm kernel ran: ${keys.join(" ")}`,
    );
  } finally {
    await backend.dispose();
  }
});
