import assert from "node:assert/strict";
import { test } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { CpuBackend } from "../src/backends/cpu/backend.js";
import { BufferPool } from "../src/backends/cpu/buffer-pool.js";
import { planGraph } from "../src/engine/executor.js";
import { bertInputs, buildBertGraph } from "../src/models/bert.js";
import { evaluateGraph } from "../src/ops/evaluate.js";
import { optimizeGraph } from "../src/passes/index.js";
import { assertClose } from "./support/compare.js";

const config = { layers: 2, hidden: 64, heads: 4, ffn: 256, vocab: 100 };

test("memory plan: after the first run of a shape, runs take every large buffer from the pool", async () => {
  const { graph } = optimizeGraph(buildBertGraph(config));
  const backend = new CpuBackend({ threads: 1 });
  const prepared = await backend.prepare(graph, planGraph(graph));
  const feeds = bertInputs([32, 20, 9], 32, config.vocab);
  const out = graph.outputs[0]!.name;
  const first = (await prepared.run(feeds, [out]))[out]!;
  const { allocations } = backend.buffers.stats;
  assert.ok(allocations > 0, "the first run allocated no pooled buffers: nothing is pooled");
  const reusesBefore = backend.buffers.stats.reuses;
  for (let r = 0; r < 3; r++) {
    const again = (await prepared.run(feeds, [out]))[out]!;
    assert.deepEqual(again.data, first.data, "a run on recycled buffers differs from the first");
  }
  assert.equal(backend.buffers.stats.allocations, allocations, "a steady-state run allocated pooled buffers");
  assert.ok(backend.buffers.stats.reuses - reusesBefore >= 3 * allocations);
  // Outputs leave the run as plain arrays (the read-back edge), never as views of pool buffers.
  assert.ok(!(first.data.buffer instanceof SharedArrayBuffer));
  assertClose(first, evaluateGraph(graph, feeds).get(out)!, 1e-4, "CPU run vs the reference evaluator");
  await backend.dispose();
});

test("memory plan: values that alias a pooled buffer keep it alive until the last of them dies", async () => {
  const { graph } = optimizeGraph(buildBertGraph({ ...config, layers: 1 }), { level: "disabled" });
  const backend = new CpuBackend({ threads: 1 });
  const prepared = await backend.prepare(graph, planGraph(graph));
  const feeds = bertInputs([16, 5], 16, config.vocab);
  const out = graph.outputs[0]!.name;
  // The unfused graph reshapes MatMul outputs into heads (Reshape aliases its input): if the MatMul's
  // buffer went back to the pool when the MatMul value died, a later op would overwrite the heads.
  const got = (await prepared.run(feeds, [out]))[out]!;
  assertClose(got, evaluateGraph(graph, feeds).get(out)!, 1e-4, "unfused CPU run vs reference");
});

test("CPU backend: dispose() stops the workers it started; the process needs no dispose to exit", async () => {
  const { graph } = optimizeGraph(buildBertGraph({ ...config, layers: 1, hidden: 256, ffn: 1024 }));
  // The worker pool serves the WebAssembly kernels (the native ones run on the addon's own threads).
  const backend = new CpuBackend({ threads: 2, cpuKernels: "wasm" });
  const prepared = await backend.prepare(graph, planGraph(graph));
  const out = graph.outputs[0]!.name;
  // [256 × 256] · [256 × 1024]: 134 MFLOP, above the async threshold, so the backend's workers start.
  await prepared.run(bertInputs([64, 64, 64, 64], 64, config.vocab), [out]);
  assert.equal(backend.pool.liveWorkers, 2);
  await backend.dispose();
  assert.equal(backend.pool.liveWorkers, 0);
});

test("buffer pool: free buffers are reused by length, and no more than the cap is kept", () => {
  const pool = new BufferPool(3000);
  const a = pool.allocFloat32(2000);
  const b = pool.allocFloat32(2000);
  assert.ok(a.buffer instanceof SharedArrayBuffer);
  assert.equal(
    pool.allocFloat32(10).buffer instanceof SharedArrayBuffer,
    false,
    "small arrays are not pooled",
  );
  pool.recycle(a);
  pool.recycle(b); // 4000 free floats would pass the 3000 cap: b is dropped
  assert.equal(pool.allocFloat32(2000), a);
  const c = pool.allocFloat32(2000);
  assert.notEqual(c, b);
  assert.equal(pool.stats.allocations, 3);
  assert.equal(pool.stats.reuses, 1);
});

test("CPU backend: one dropped without dispose() stops its workers once garbage-collected", async () => {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  const { graph } = optimizeGraph(buildBertGraph({ ...config, layers: 1, hidden: 256, ffn: 1024 }));
  const pool = await (async () => {
    const backend = new CpuBackend({ threads: 2, cpuKernels: "wasm" });
    const prepared = await backend.prepare(graph, planGraph(graph));
    await prepared.run(bertInputs([64, 64, 64, 64], 64, config.vocab), [graph.outputs[0]!.name]);
    return backend.pool;
  })();
  assert.equal(pool.liveWorkers, 2);
  for (let i = 0; i < 50 && pool.liveWorkers > 0; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(pool.liveWorkers, 0);
});
