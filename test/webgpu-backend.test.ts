/**
 * The webgpu backend behind the seam (lavapipe in CI): the BERT and BART fixture models (eager and SDPA), fused, match onnxruntime's
 * reference outputs within 1e-4 with no op falling back to the CPU; the unfused graph of one runs too.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { WebGpuBackend } from "../src/backends/webgpu/backend.js";
import type { WebGpuPreparedGraph } from "../src/backends/webgpu/graph/prepared-graph.js";
import { planGraph, runGraph } from "../src/engine/executor.js";
import { InferenceSession } from "../src/engine/session.js";
import { GraphBuilder } from "../src/ir/builder.js";
import { Tensor } from "../src/ir/tensor.js";
import { BERT_TINY, bertInputs, buildBertGraph } from "../src/models/bert.js";
import { loadModel, tensorFromJson } from "../src/onnx/index.js";
import { optimizeGraph } from "../src/passes/index.js";
import { maxAbsDiff } from "./support/compare.js";
import { gpuContext } from "./webgpu-helpers.js";

const fixtures = fileURLToPath(new URL("../../shared/fixtures/onnx/", import.meta.url));
const backend = new WebGpuBackend();
after(() => backend.dispose());

type JsonTensor = Parameters<typeof tensorFromJson>[0];
interface IoCase {
  inputs: Record<string, JsonTensor>;
  outputs: Record<string, JsonTensor>;
}
const decode = (r: Record<string, JsonTensor>): Record<string, Tensor> =>
  Object.fromEntries(Object.entries(r).map(([k, v]) => [k, tensorFromJson(v)]));

for (const [name, level] of [
  ["bert_eager", "all"],
  ["bert_sdpa", "all"],
  ["distilbert_eager", "all"],
  // onnxruntime-fused graph (BiasGelu, SkipLayerNormalization) and an encoder-decoder (cross and causal
  // self attention on mhafuse.Attention).
  ["bert_ort_fused", "all"],
  ["bart_sdpa", "all"],
  ["bart_eager", "all"],
  ["bert_eager", "disabled"],
] as const) {
  test(`webgpu backend: ${name} (${level === "all" ? "fused" : "unfused"}) matches onnxruntime`, async (t) => {
    const ctx = await gpuContext();
    if (typeof ctx === "string") return t.skip(ctx);
    const model = await loadModel(`${fixtures}${name}.onnx`);
    const { graph } = optimizeGraph(model.graph, { level });
    const prepared = await backend.prepare(graph, planGraph(graph));
    const { cases } = JSON.parse(readFileSync(`${fixtures}${name}.io.json`, "utf8")) as { cases: IoCase[] };
    for (const c of cases) {
      const want = decode(c.outputs);
      const got = await prepared.run(decode(c.inputs), Object.keys(want));
      for (const [out, ref] of Object.entries(want)) {
        const d = maxAbsDiff(got[out]!, ref);
        assert.ok(d <= 1e-4, `${name} ${out}: max |diff| ${d}`);
      }
    }
    if (level === "all") assert.deepEqual(backend.fallbacks(), [], "no op may fall back on a fused fixture");
  });
}

test("webgpu provider: InferenceSession runs distilbert_eager on the GPU and reports no fallback", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  const session = await InferenceSession.create(`${fixtures}distilbert_eager.onnx`, {
    executionProviders: ["webgpu"],
  });
  try {
    assert.equal(session.provider, "webgpu");
    const { cases } = JSON.parse(readFileSync(`${fixtures}distilbert_eager.io.json`, "utf8")) as {
      cases: IoCase[];
    };
    const want = decode(cases[0]!.outputs);
    const got = await session.run(decode(cases[0]!.inputs));
    for (const [out, ref] of Object.entries(want)) assert.ok(maxAbsDiff(got[out]!, ref) <= 1e-4, out);
    assert.deepEqual(session.fallbacks(), []);
  } finally {
    await session.release();
  }
});

test("webgpu: a Transpose that moves only size-1 axes of a device value is an alias — no dispatch, the right numbers, run after run", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  const b = new GraphBuilder({ opset: 17 });
  const x = b.input("x", "float32", [1, 6, 4]);
  const relu = b.op("Relu", [x], {}, { outputs: ["relu"] });
  const moved = b.op("Transpose", [relu], { perm: [1, 0, 2] }, { outputs: ["moved"] });
  const exp = b.op("Exp", [moved], {}, { outputs: ["exp"] });
  const back = b.op("Transpose", [exp], { perm: [1, 0, 2] }, { outputs: ["back"] });
  b.output(b.op("Add", [back, relu], {}, { outputs: ["y"] }), "float32");
  b.output("moved", "float32");
  const graph = b.build();
  const gpu = new WebGpuBackend();
  try {
    const prepared = (await gpu.prepare(graph, planGraph(graph))) as WebGpuPreparedGraph;
    for (let run = 0; run < 4; run++) {
      const feeds = {
        x: new Tensor(
          "float32",
          Array.from({ length: 24 }, (_, i) => Math.sin(i + run) * 2),
          [1, 6, 4],
        ),
      };
      const want = runGraph(graph, feeds);
      const got = await prepared.run(feeds, ["y", "moved"]);
      for (const name of ["y", "moved"]) {
        assert.deepEqual([...got[name]!.dims], [...want.get(name)!.dims], `${name} dims, run ${run}`);
        assert.ok(maxAbsDiff(got[name]!, want.get(name)!) <= 1e-6, `${name}, run ${run}`);
      }
      for (const n of graph.nodes) assert.ok(prepared.onDevice.has(n.name), `${n.name} ran on the host`);
    }
    // The two Transposes recorded no dispatch: Relu, Exp and Add did.
    const plans = prepared.replay.describe();
    assert.ok(
      plans.every((p) => p.dispatches === 3),
      JSON.stringify(plans.map((p) => p.dispatches)),
    );
  } finally {
    await gpu.dispose();
  }
});

test("webgpu: var-seqlen QKVToContext checks cu_seqlens as the op's contract says before a kernel reads rows", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  const E = 8;
  const b = new GraphBuilder({ opset: 17, opsets: { mhafuse: 1 } });
  const qkv = b.input("qkv", "float32", [12, 3 * E, 1, 1]);
  const cu = b.input("cu", "int32", [4]);
  const maxLen = b.input("max", "float32", [8]);
  b.output(
    b.op(
      "QKVToContext",
      [qkv, "", cu, maxLen],
      { num_heads: 2, var_seqlen: 1 },
      { outputs: ["y"], domain: "mhafuse" },
    ),
    "float32",
  );
  const graph = b.build();
  const gpu = new WebGpuBackend();
  try {
    const prepared = await gpu.prepare(graph, planGraph(graph));
    const feeds = (cuValues: number[]) => ({
      qkv: new Tensor(
        "float32",
        Array.from({ length: 12 * 3 * E }, (_, i) => Math.cos(i)),
        [12, 3 * E, 1, 1],
      ),
      cu: new Tensor("int32", cuValues, [4]),
      max: new Tensor("float32", new Float32Array(8), [8]),
    });
    // A valid batch runs and matches the reference; a decreasing or shifted cu_seqlens is the op's InputError.
    const good = feeds([0, 8, 8, 12]);
    const got = await prepared.run(good, ["y"]);
    assert.ok(maxAbsDiff(got.y!, runGraph(graph, good).get("y")!) <= 1e-5);
    assert.ok(
      (prepared as WebGpuPreparedGraph).onDevice.has(graph.nodes[0]!.name),
      "the webgpu kernel ran it",
    );
    for (const [bad, why] of [
      [[0, 8, 4, 12], /non-decreasing/],
      [[2, 4, 8, 12], /must start at 0/],
    ] as const)
      await assert.rejects(
        prepared.run(feeds([...bad]), ["y"]),
        (e: unknown) => e instanceof Error && why.test(e.message),
      );
  } finally {
    await gpu.dispose();
  }
});

test("empty batches and empty sequences run through the fused BERT on both providers", async (t) => {
  // The linear-layer fusion's Reshape back to [B, S, N] takes its zeros as zeros (allowzero).
  const graph = buildBertGraph({ ...BERT_TINY, layers: 1 });
  for (const ep of ["cpu", "webgpu"] as const) {
    if (ep === "webgpu" && typeof (await gpuContext()) === "string") {
      t.diagnostic("no webgpu adapter: cpu only");
      continue;
    }
    const s = await InferenceSession.fromGraph(graph, { executionProviders: [ep] });
    try {
      for (const [lengths, S] of [
        [[], 16],
        [[], 0],
        [[0, 0], 0],
      ] as const) {
        const out = await s.run(bertInputs([...lengths], S, BERT_TINY.vocab));
        assert.deepEqual(
          [...out.last_hidden_state!.dims],
          [lengths.length, S, BERT_TINY.hidden],
          `${ep} [${lengths.length},${S}]`,
        );
      }
    } finally {
      await s.release();
    }
  }
});
