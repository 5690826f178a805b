/**
 * Host work per run on the webgpu backend: the shape chains are evaluated once per feed-dims signature and
 * reused (never across different dims, never capturing feed values), and the packed op's [B, 1, S, S]
 * fallback mask bias is built only when a sequence is not right-padded. Every run is checked against
 * onnxruntime-node on the same model and feeds.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import * as ort from "onnxruntime-node";
import { WebGpuBackend } from "../src/backends/webgpu/backend.js";
import type { WebGpuPreparedGraph } from "../src/backends/webgpu/graph/prepared-graph.js";
import { planGraph } from "../src/engine/executor.js";
import { Tensor } from "../src/ir/tensor.js";
import { loadModel } from "../src/onnx/index.js";
import { optimizeGraph } from "../src/passes/index.js";
import { maxAbsDiff } from "./support/compare.js";
import { FIXTURES, fixtureCases } from "./support/fixtures.js";
import { gpuContext } from "./webgpu-helpers.js";

const backend = new WebGpuBackend();
after(() => backend.dispose());
const MODEL = `${FIXTURES}onnx/bert_eager.onnx`;

async function onnxruntime(feeds: Record<string, Tensor>, names: string[]): Promise<Record<string, Tensor>> {
  const session = await ort.InferenceSession.create(MODEL);
  const out = await session.run(
    Object.fromEntries(
      Object.entries(feeds).map(([k, t]) => [
        k,
        new ort.Tensor(t.type as ort.Tensor.Type, t.data as BigInt64Array, [...t.dims]),
      ]),
    ),
  );
  return Object.fromEntries(
    names.map((n) => [n, new Tensor("float32", out[n]!.data as Float32Array, [...out[n]!.dims])]),
  );
}

/** The case's feeds with attention_mask rows replaced (1 = token). */
function withMask(feeds: Record<string, Tensor>, rows: number[][]): Record<string, Tensor> {
  const [B, S] = feeds.attention_mask!.dims as [number, number];
  assert.equal(rows.length, B);
  const data = BigInt64Array.from(rows.flatMap((r) => r.map(BigInt)));
  assert.equal(data.length, B * S);
  return { ...feeds, attention_mask: new Tensor("int64", data, [B, S]) };
}

async function expectOrt(p: WebGpuPreparedGraph, feeds: Record<string, Tensor>, names: string[]) {
  const got = await p.run(feeds, names);
  const want = await onnxruntime(feeds, names);
  for (const n of names) {
    const d = maxAbsDiff(got[n]!, want[n]!);
    assert.ok(d <= 1e-4, `${n}: max |diff| ${d} against onnxruntime`);
  }
}

test("webgpu host work: shape chains cached per feed dims, fallback mask bias built only when needed", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  const model = await loadModel(MODEL);
  const { graph } = optimizeGraph(model.graph, { level: "all" });
  const p = (await backend.prepare(graph, planGraph(graph))) as WebGpuPreparedGraph;
  const names = graph.outputs.map((o) => o.name);
  const [small, large] = fixtureCases("bert_eager");
  const sig = (f: Record<string, Tensor>) => p.shapeCache.key(f);

  // First run of a signature fills the cache; right-padded rows leave the fallback bias unbuilt.
  await expectOrt(p, small!.inputs, names);
  const cached = p.shapeCache.size(sig(small!.inputs));
  assert.ok(cached >= 10, `only ${cached} shape-chain steps cached`);
  assert.ok(p.skippedLastRun > 0, "the fallback mask bias chain ran although every row is right-padded");
  const skipped = p.skippedLastRun;

  // Same dims, other mask values (cache hit): the values still flow, nothing stale.
  const [B, S] = small!.inputs.attention_mask!.dims as [number, number];
  const right = Array.from({ length: B }, (_, b) =>
    Array.from({ length: S }, (_, j) => (j < S - 3 - b ? 1 : 0)),
  );
  await expectOrt(p, withMask(small!.inputs, right), names);
  assert.equal(p.shapeCache.size(sig(small!.inputs)), cached);
  assert.equal(p.skippedLastRun, skipped);

  // A left-padded row: the packed op needs its fallback bias, which is then computed on demand.
  const left = right.map((r, b) => (b === 0 ? [...r].reverse() : r));
  await expectOrt(p, withMask(small!.inputs, left), names);
  assert.ok(p.skippedLastRun < skipped, "the fallback bias was not built for a left-padded row");

  // Other dims: a signature of their own.
  await expectOrt(p, large!.inputs, names);
  assert.notEqual(sig(large!.inputs), sig(small!.inputs));
  assert.ok(p.shapeCache.size(sig(large!.inputs)) > 0);
  await expectOrt(p, small!.inputs, names);
});
