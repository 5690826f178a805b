/**
 * Whether the epilogue fusions (residual Add → SkipLayerNormalization, Gemm → GELU → mhafuse.FusedGemm) pay on
 * the CPU: the BERT-base-width graph optimized with and without them, native kernels, onnxruntime-node as the
 * yardstick, one process, balanced run order (bench/order.ts), medians; prints the max |diff| of the two outputs.
 *
 *   node --import tsx bench/fusion-ab.ts [--batch 1] [--layers 4] [--reps 18]
 */
import { parseArgs } from "node:util";
import * as ort from "onnxruntime-node";
import { InferenceSession } from "../src/engine/session.js";
import { cloneGraph } from "../src/ir/graph.js";
import { bertInputs, buildBertGraph } from "../src/models/bert.js";
import { modelFromGraph, saveModel } from "../src/onnx/index.js";
import {
  foldConstants,
  foldShapes,
  fuseAttention,
  fuseGelu,
  fuseLinearBias,
  fuseRmsNorm,
  optimizeGraph,
  removeDeadNodes,
} from "../src/passes/index.js";
import { runOrder } from "./order.js";

const { values } = parseArgs({
  options: {
    batch: { type: "string", default: "1" },
    layers: { type: "string", default: "4" },
    reps: { type: "string", default: "18" },
  },
});
const B = Number(values.batch);
const REPS = Number(values.reps);
const graph = buildBertGraph({
  layers: Number(values.layers),
  hidden: 768,
  heads: 12,
  ffn: 3072,
  vocab: 1000,
});
const fused = optimizeGraph(graph).graph;
// The pipeline of optimizeGraph up to linear-bias, without the two epilogue fusions.
const plain = cloneGraph(graph);
for (const pass of [
  foldConstants,
  foldShapes,
  foldConstants,
  removeDeadNodes,
  fuseAttention,
  fuseRmsNorm,
  fuseGelu,
])
  pass(plain);
removeDeadNodes(plain);
fuseLinearBias(plain);
removeDeadNodes(plain);

const ortSession = await ort.InferenceSession.create(saveModel(modelFromGraph(graph)), {
  executionProviders: ["cpu"],
  graphOptimizationLevel: "all",
  intraOpNumThreads: 2,
  interOpNumThreads: 1,
});
const options = { intraOpNumThreads: 2, graphOptimizationLevel: "basic" } as const;
const without = InferenceSession.fromGraph(plain, options);
const withFusions = InferenceSession.fromGraph(fused, options);
const feeds = bertInputs(Array(B).fill(128), 128, 1000);
const ortFeeds = Object.fromEntries(
  Object.entries(feeds).map(([k, t]) => [k, new ort.Tensor("int64", t.data as BigInt64Array, [...t.dims])]),
);
const a = (await without.run(feeds)).last_hidden_state!.toFloat64();
const b = (await withFusions.run(feeds)).last_hidden_state!.toFloat64();
let diff = 0;
for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i]! - b[i]!));

const engines: [string, () => Promise<unknown>][] = [
  ["onnxruntime", () => ortSession.run(ortFeeds)],
  ["without", () => without.run(feeds)],
  ["with", () => withFusions.run(feeds)],
];
const times: number[][] = engines.map(() => []);
for (let r = -2; r < REPS; r++)
  for (const i of runOrder(engines.length, r + 2)) {
    await new Promise((res) => setTimeout(res, 20)); // a pool spinning after its run taxes nobody
    const t0 = performance.now();
    await engines[i]![1]();
    if (r >= 0) times[i]!.push(performance.now() - t0);
  }
const median = (x: number[]) => [...x].sort((p, q) => p - q)[x.length >> 1]!;
const [o, w0, w1] = times.map(median) as [number, number, number];
console.log(
  `BERT ${values.layers} layers [${B},128], 2 threads, median of ${REPS}; max |diff| with vs without: ${diff}`,
);
console.log(
  `onnxruntime ${o.toFixed(1)} ms | without the fusions ${w0.toFixed(1)} ms (${(w0 / o).toFixed(3)}x) | with ${w1.toFixed(1)} ms (${(w1 / o).toFixed(3)}x)`,
);
await Promise.all([without.release(), withFusions.release(), ortSession.release()]);
