// Whole-model CPU benchmark: the generated BERT (PyTorch eager node pattern) in mhafuse, unfused and fused,
// side by side with onnxruntime-node's CPU provider on the same machine, in the same run.
//   node --import tsx bench/bert.ts [--layers 2 --hidden 256 --heads 4 --ffn 1024 --batch 4 --seq 128 --repeats 5]
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import * as ort from "onnxruntime-node";
import { InferenceSession } from "../src/engine/session.js";
import type { Tensor } from "../src/ir/tensor.js";
import { bertInputs, buildBertGraph } from "../src/models/bert.js";
import { modelFromGraph, saveModel } from "../src/onnx/index.js";
import { benchArgs } from "./cli-args.js";

const { values } = benchArgs(import.meta.url, () =>
  parseArgs({
    options: {
      layers: { type: "string", default: "2" },
      hidden: { type: "string", default: "256" },
      heads: { type: "string", default: "4" },
      ffn: { type: "string", default: "1024" },
      batch: { type: "string", default: "4" },
      seq: { type: "string", default: "128" },
      repeats: { type: "string", default: "5" },
    },
  }),
);
const n = (k: keyof typeof values) => Number(values[k]);
const config = { layers: n("layers"), hidden: n("hidden"), heads: n("heads"), ffn: n("ffn"), vocab: 1000 };
const graph = buildBertGraph(config);
const lengths = Array.from(
  { length: n("batch") },
  (_, i) => n("seq") - Math.floor((i * n("seq")) / (2 * n("batch"))),
);
const feeds = bertInputs(lengths, n("seq"), 1000);

async function median(run: () => Promise<unknown>): Promise<number> {
  await run();
  const times: number[] = [];
  for (let i = 0; i < n("repeats"); i++) {
    const t0 = performance.now();
    await run();
    times.push(performance.now() - t0);
  }
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
}

const ortSession = await ort.InferenceSession.create(saveModel(modelFromGraph(graph)), {
  executionProviders: ["cpu"],
  graphOptimizationLevel: "all",
});
const ortFeeds = Object.fromEntries(
  Object.entries(feeds).map(([k, t]: [string, Tensor]) => [k, new ort.Tensor(t.type, t.data, [...t.dims])]),
);
const ortMs = await median(() => ortSession.run(ortFeeds));
const rows: [string, number][] = [["onnxruntime-node cpu", ortMs]];
for (const level of ["disabled", "all"] as const) {
  const s = InferenceSession.fromGraph(graph, { graphOptimizationLevel: level });
  rows.push([`mhafuse ${level === "all" ? "fused" : "unfused"}`, await median(() => s.run(feeds))]);
}
console.log(`machine: ${cpus().length} x ${cpus()[0]?.model ?? "?"}, node ${process.version}`);
console.log(
  `BERT ${JSON.stringify(config)} batch ${n("batch")} seq ${n("seq")} lengths [${lengths.join(",")}]`,
);
for (const [name, ms] of rows) {
  console.log(
    `${name.padEnd(22)} ${ms.toFixed(1).padStart(9)} ms   ${(ms / ortMs).toFixed(2)}x onnxruntime's time`,
  );
}
