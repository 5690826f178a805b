import assert from "node:assert/strict";
import { test } from "node:test";
import { CpuBackend } from "../src/backends/cpu/backend.js";
import { nativeKernels } from "../src/backends/cpu/native/index.js";
import { packedViewCount } from "../src/backends/cpu/native-compute.js";
import { constantGemmWeights } from "../src/backends/cpu/prepack.js";
import type { CpuPreparedGraph } from "../src/backends/cpu/prepared-graph.js";
import { planGraph } from "../src/engine/executor.js";
import { InferenceSession } from "../src/engine/session.js";
import { GraphBuilder } from "../src/ir/builder.js";
import type { Graph } from "../src/ir/graph.js";
import { Tensor } from "../src/ir/tensor.js";
import { bertInputs, buildBertGraph } from "../src/models/bert.js";
import { modelFromGraph } from "../src/onnx/save.js";
import { optimizeGraph } from "../src/passes/index.js";
import { rand } from "./native-helpers.js";

// Weights packed at prepare (src/backends/cpu/prepack.ts): the cache holds every constant GEMM weight once the
// graph is prepared, the first run packs nothing, and the outputs are those of a backend that packs on first use.

function assertIdentical(a: Record<string, Tensor>, b: Record<string, Tensor>, what: string): void {
  for (const [name, x] of Object.entries(b)) {
    const y = a[name]!;
    assert.deepEqual(y.dims, x.dims, `${what}: ${name} dims`);
    for (let i = 0; i < x.size; i++)
      if (!Object.is(y.data[i], x.data[i]))
        assert.fail(`${what}: ${name}[${i}] ${y.data[i]} vs ${x.data[i]}`);
  }
}

/**
 * Counts the native packWeights calls of `backend` on `weights` (an activation as B — attention's Q·Kᵀ in the
 * unfused graph — is packed per call by design). Its kernels are process-wide: restore after.
 */
function countPacks(
  backend: CpuBackend,
  weights: Set<Float32Array>,
): { count: () => number; restore: () => void } {
  const native = backend.native!;
  const original = native.packWeights;
  let calls = 0;
  native.packWeights = function (this: typeof native, ...args: Parameters<typeof original>) {
    if (weights.has(args[0])) calls++;
    return original.apply(this, args);
  };
  return { count: () => calls, restore: () => void (native.packWeights = original) };
}

/** Every kind of constant weight view: MatMul (2-D and batched B), Gemm with transB and a bias, FusedGemm. */
function gemmZoo(): Graph {
  const b = new GraphBuilder({ opset: 17 });
  const x = b.input("x", "float32", [5, 24]);
  const xb = b.input("xb", "float32", [3, 5, 24]);
  const w = (dims: number[], seed: number) =>
    b.init(
      new Tensor(
        "float32",
        rand(
          dims.reduce((p, q) => p * q, 1),
          seed,
        ),
        dims,
      ),
    );
  const mm = b.op("MatMul", [x, w([24, 40], 1)]);
  const gemmT = b.op("Gemm", [mm, w([24, 40], 2), w([24], 3)], { transB: 1 });
  const fused = b.op(
    "FusedGemm",
    [gemmT, w([24, 33], 4), w([33], 5)],
    { activation: "Gelu" },
    { domain: "mhafuse" },
  );
  const batched = b.op("MatMul", [xb, w([3, 24, 17], 6)]);
  const column = b.op("MatMul", [x, w([24], 7)]);
  b.output(fused, "float32");
  b.output(batched, "float32");
  b.output(column, "float32");
  return b.build();
}

const zooFeeds = () => ({
  x: new Tensor("float32", rand(5 * 24, 11), [5, 24]),
  xb: new Tensor("float32", rand(3 * 5 * 24, 12), [3, 5, 24]),
});

test("prepack: constantGemmWeights names each view as the run asks for it", () => {
  const views = constantGemmWeights(gemmZoo());
  const summary = views.map((v) => [v.bOffset, v.ldb, v.transB, v.K, v.N]);
  assert.deepEqual(summary, [
    [0, 40, false, 24, 40],
    [0, 40, true, 40, 24],
    [0, 33, false, 24, 33],
    [0, 17, false, 24, 17],
    [24 * 17, 17, false, 24, 17],
    [2 * 24 * 17, 17, false, 24, 17],
    [0, 1, false, 24, 1],
  ]);
});

test("prepack: FusedGemm over a full C matrix and Gemm with alpha ≠ 1 are not packed (the run would not read them)", () => {
  const b = new GraphBuilder({ opset: 17 });
  const x = b.input("x", "float32", [4, 8]);
  const w = () => b.init(new Tensor("float32", rand(64, 1), [8, 8]));
  b.output(b.op("FusedGemm", [x, w(), w()], { activation: "Gelu" }, { domain: "mhafuse" }), "float32");
  b.output(b.op("Gemm", [x, w()], { alpha: 0.5 }), "float32");
  b.output(b.op("Gemm", [x, w()], { transA: 1 }), "float32");
  assert.deepEqual(constantGemmWeights(b.build()), []);
});

for (const [label, makeGraph, feeds, fetches] of [
  ["a graph of every weight view", gemmZoo, zooFeeds, undefined],
  [
    "the fused BERT graph",
    () => optimizeGraph(buildBertGraph(small), { level: "all" }).graph,
    () => bertInputs([16, 11], 16, small.vocab, 3),
    ["last_hidden_state"],
  ],
  [
    "the unfused BERT graph (MatMul)",
    () => buildBertGraph(small),
    () => bertInputs([16], 16, small.vocab, 4),
    ["last_hidden_state"],
  ],
] as const) {
  for (const bind of [true, false]) {
    test(`prepack: ${label} (bind ${bind}) — weights packed at prepare, none on the first run, same outputs`, async (t) => {
      const graph = makeGraph();
      const backend = new CpuBackend({ threads: 2, bind });
      const lazy = new CpuBackend({ threads: 2, bind, prepack: false });
      if (!backend.native) {
        await Promise.all([backend.dispose(), lazy.dispose()]);
        return t.skip("no native addon: nothing is packed");
      }
      // The lazy backend runs on its own copy of the weights, so it cannot find the prepacked panels.
      const copy: Graph = {
        ...graph,
        initializers: new Map(
          [...graph.initializers].map(([n, x]) => [n, new Tensor(x.type, x.data.slice(), x.dims)]),
        ),
      };
      const weights = constantGemmWeights(graph);
      assert.ok(weights.length > 0);
      const all = new Set<Float32Array>();
      for (const g of [graph, copy])
        for (const x of g.initializers.values()) if (x.type === "float32") all.add(x.data as Float32Array);
      const packs = countPacks(backend, all);
      try {
        const prepared = (await backend.prepare(graph, planGraph(graph))) as CpuPreparedGraph;
        const atPrepare = packs.count();
        const distinct = new Set(weights.map((v) => v.B));
        for (const B of distinct)
          assert.ok(packedViewCount(B) >= 1, "every weight is in the cache after prepare");
        assert.equal(
          [...distinct].reduce((s, B) => s + packedViewCount(B), 0),
          weights.length,
          "one cached view per weight view",
        );
        assert.equal(atPrepare, weights.length, "prepare packed each view once");
        const outs = fetches ?? graph.outputs.map((o) => o.name);
        const f = feeds();
        const first = await prepared.run(f, outs);
        assert.equal(packs.count(), atPrepare, "the first run packs nothing");
        // A second prepared graph of the same weights (another input signature) packs nothing either.
        await backend.prepare(graph, planGraph(graph));
        assert.equal(packs.count(), atPrepare, "a second prepare finds the panels");
        const lazyPrepared = await lazy.prepare(copy, planGraph(copy));
        for (const x of copy.initializers.values())
          if (x.type === "float32")
            assert.equal(packedViewCount(x.data as Float32Array), 0, "lazy: none at prepare");
        const reference = await lazyPrepared.run(f, outs);
        assert.ok(packs.count() > atPrepare, "the lazy backend packed on its first run");
        assertIdentical(first, reference, label);
        assertIdentical(await prepared.run(f, outs), reference, `${label}, second run`);
      } finally {
        packs.restore();
        await Promise.all([backend.dispose(), lazy.dispose()]);
      }
    });
  }
}

const small = { layers: 2, hidden: 64, heads: 4, ffn: 256, vocab: 100 };

test("prepack: gemmKernel js and the wasm family pack nothing", async () => {
  const graph = gemmZoo();
  for (const opts of [{ gemmKernel: "js" as const }, { cpuKernels: "wasm" as const }]) {
    const backend = new CpuBackend({ threads: 1, ...opts });
    assert.equal(backend.packWeights(graph), 0);
    await backend.dispose();
  }
});

test("prepack: InferenceSession.create packs the fused graph's weights; the first run packs none", async (t) => {
  const native = nativeKernels();
  if (!native) return t.skip("native addon not loaded");
  const config = { layers: 2, hidden: 64, heads: 4, ffn: 256, vocab: 100 };
  const model = modelFromGraph(buildBertGraph(config));
  const original = native.packWeights;
  let calls = 0;
  native.packWeights = function (this: typeof native, ...args: Parameters<typeof original>) {
    calls++;
    return original.apply(this, args);
  };
  try {
    const session = await InferenceSession.create(model, { intraOpNumThreads: 2 });
    const atCreate = calls;
    // Per layer: the packed QKV, attention output, FFN up and FFN down weights.
    assert.ok(atCreate >= 4 * config.layers, `packed at create: ${atCreate}`);
    const out = await session.run(bertInputs([16, 9], 16, config.vocab));
    assert.equal(calls, atCreate, "the first run packed weights");
    assert.ok(Object.keys(out).length > 0);
    await session.release();
  } finally {
    native.packWeights = original;
  }
});
