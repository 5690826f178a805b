/**
 * Padding removal on and off (removePadding) beside onnxruntime-node at [1,128] with no padding: one process, the
 * three engines in a rotating order with a 20 ms pause before each run, medians of 15 (4-layer BERT-base width).
 *
 *   node --import tsx bench/padding-ab.ts
 */
import * as ort from "onnxruntime-node";
import { InferenceSession } from "../src/engine/session.js";
import { bertInputs, buildBertGraph } from "../src/models/bert.js";
import { modelFromGraph, saveModel } from "../src/onnx/index.js";

const graph = buildBertGraph({ layers: 4, hidden: 768, heads: 12, ffn: 3072, vocab: 1000 });
const on = InferenceSession.fromGraph(graph, { intraOpNumThreads: 2 });
const off = InferenceSession.fromGraph(graph, { intraOpNumThreads: 2, removePadding: false });
const o = await ort.InferenceSession.create(saveModel(modelFromGraph(graph)), {
  intraOpNumThreads: 2,
  interOpNumThreads: 1,
  graphOptimizationLevel: "all",
});
const feeds = bertInputs([128], 128, 1000);
const of = Object.fromEntries(
  Object.entries(feeds).map(([k, t]) => [k, new ort.Tensor(t.type, t.data, [...t.dims])]),
);
const runs: [string, () => Promise<unknown>][] = [
  ["ort", () => o.run(of)],
  ["on", () => on.run(feeds)],
  ["off", () => off.run(feeds)],
];
for (const [, r] of runs) await r();
const t: Record<string, number[]> = { ort: [], on: [], off: [] };
for (let r = 0; r < 15; r++)
  for (let i = 0; i < 3; i++) {
    const [k, run] = runs[(i + r) % 3]!;
    await new Promise((res) => setTimeout(res, 20));
    const t0 = performance.now();
    await run();
    t[k]!.push(performance.now() - t0);
  }
const med = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;
console.log(
  Object.entries(t)
    .map(([k, v]) => `${k} ${med(v).toFixed(1)}`)
    .join("  "),
);
await on.release();
await off.release();
