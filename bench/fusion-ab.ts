/**
 * Whether the epilogue fusions (residual Add → SkipLayerNormalization, Gemm → GELU → mhafuse.FusedGemm) pay on
 * the CPU: the BERT-base-width graph optimized without them, with each alone and with both, native kernels,
 * onnxruntime-node as the yardstick (`--no-ort`: left out, so its spinning pool taxes nobody), one process,
 * balanced run order (bench/order.ts), medians; prints the max |diff| between "none" and "both".
 *
 *   node --import tsx bench/fusion-ab.ts [--batch 1] [--layers 4] [--reps 16] [--no-ort]
 */
import { parseArgs } from "node:util";
import * as ort from "onnxruntime-node";
import { InferenceSession } from "../src/engine/session.js";
import { bertInputs, buildBertGraph } from "../src/models/bert.js";
import { modelFromGraph, saveModel } from "../src/onnx/index.js";
import { optimizeGraph } from "../src/passes/index.js";
import { benchArgs } from "./cli-args.js";
import { runOrder } from "./order.js";
import { settle } from "./settle.js";

const { values } = benchArgs(import.meta.url, () =>
  parseArgs({
    options: {
      batch: { type: "string", default: "1" },
      layers: { type: "string", default: "4" },
      reps: { type: "string", default: "16" },
      "no-ort": { type: "boolean", default: false },
    },
  }),
);
const B = Number(values.batch);
const REPS = Number(values.reps);
const graph = buildBertGraph({
  layers: Number(values.layers),
  hidden: 768,
  heads: 12,
  ffn: 3072,
  vocab: 1000,
});
/** optimizeGraph's pipeline, with or without each epilogue fusion. */
function optimized(skip: boolean, gemm: boolean) {
  const disabledPasses = [
    ...(skip ? [] : ["fuse-skip-layer-norm"]),
    ...(gemm ? [] : ["fuse-gemm-activation"]),
  ];
  const g = optimizeGraph(graph, { disabledPasses }).graph;
  return InferenceSession.fromGraph(g, { intraOpNumThreads: 2, graphOptimizationLevel: "basic" });
}

const ortSession = await ort.InferenceSession.create(saveModel(modelFromGraph(graph)), {
  executionProviders: ["cpu"],
  graphOptimizationLevel: "all",
  intraOpNumThreads: 2,
  interOpNumThreads: 1,
});
const variants: [string, InferenceSession][] = [
  ["none", optimized(false, false)],
  ["SkipLayerNorm", optimized(true, false)],
  ["FusedGemm", optimized(false, true)],
  ["both", optimized(true, true)],
];
const feeds = bertInputs(Array(B).fill(128), 128, 1000);
const ortFeeds = Object.fromEntries(
  Object.entries(feeds).map(([k, t]) => [k, new ort.Tensor("int64", t.data as BigInt64Array, [...t.dims])]),
);
const a = (await variants[0]![1].run(feeds)).last_hidden_state!.toFloat64();
const b = (await variants[3]![1].run(feeds)).last_hidden_state!.toFloat64();
let diff = 0;
for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i]! - b[i]!));

const engines: [string, () => Promise<unknown>][] = variants.map(([n, s]) => [n, () => s.run(feeds)]);
if (!values["no-ort"]) engines.unshift(["onnxruntime", () => ortSession.run(ortFeeds)]);
const times: number[][] = engines.map(() => []);
for (let r = -2; r < REPS; r++)
  for (const i of runOrder(engines.length, r + 2)) {
    await settle(); // a pool spinning after its run taxes nobody
    const t0 = performance.now();
    await engines[i]![1]();
    if (r >= 0) times[i]!.push(performance.now() - t0);
  }
const median = (x: number[]) => [...x].sort((p, q) => p - q)[x.length >> 1]!;
console.log(
  `BERT ${values.layers} layers [${B},128], 2 threads, median of ${REPS}; max |diff| both vs none: ${diff}`,
);
console.log(engines.map(([n], i) => `${n} ${median(times[i]!).toFixed(1)} ms`).join(" | "));
await Promise.all([...variants.map(([, s]) => s.release()), ortSession.release()]);
