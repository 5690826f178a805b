// A/B benchmark of two checkouts of mhafuse in ONE process: this one and another (e.g. a worktree of main),
// on the same generated BERT, runs interleaved (A, B, A, B, …) so machine load hits both alike; reports
// medians, the median of the per-pair ratios, and onnxruntime-node's median from the same interleaving.
//   node --import tsx bench/compare-checkouts.ts /path/to/other/checkout [--layers 2 --hidden 256 --heads 4
//     --ffn 1024 --batch 4 --seq 128 --pairs 15 --level all]
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import * as ort from "onnxruntime-node";
import type { Tensor } from "../src/ir/tensor.js";
import { bertInputs, buildBertGraph } from "../src/models/bert.js";
import { modelFromGraph, saveModel } from "../src/onnx/index.js";
import { benchArgs } from "./cli-args.js";
import { foreignLoad, settle } from "./settle.js";

const { values, positionals } = benchArgs(import.meta.url, () =>
  parseArgs({
    allowPositionals: true,
    options: {
      layers: { type: "string", default: "2" },
      hidden: { type: "string", default: "256" },
      heads: { type: "string", default: "4" },
      ffn: { type: "string", default: "1024" },
      batch: { type: "string", default: "4" },
      seq: { type: "string", default: "128" },
      pairs: { type: "string", default: "15" },
      level: { type: "string", default: "all" },
    },
  }),
);
const other = positionals[0];
if (!other) throw new Error("usage: compare-checkouts.ts <other checkout> [options]");
const n = (k: keyof typeof values) => Number(values[k]);

type SessionClass = {
  fromGraph(g: unknown, o: object): { run(f: Record<string, Tensor>): Promise<unknown> };
};
const load = async (root: string): Promise<SessionClass> =>
  (await import(pathToFileURL(resolve(root, "src/engine/session.ts")).href)).InferenceSession;
const [here, there] = [await load(resolve(import.meta.dirname, "..")), await load(other)];

const config = { layers: n("layers"), hidden: n("hidden"), heads: n("heads"), ffn: n("ffn"), vocab: 1000 };
const graph = buildBertGraph(config);
const lengths = Array.from(
  { length: n("batch") },
  (_, i) => n("seq") - Math.floor((i * n("seq")) / (2 * n("batch"))),
);
const feeds = bertInputs(lengths, n("seq"), 1000);
const level = values.level as "all" | "disabled";
const a = there.fromGraph(graph, { graphOptimizationLevel: level });
const b = here.fromGraph(graph, { graphOptimizationLevel: level });
const ortSession = await ort.InferenceSession.create(saveModel(modelFromGraph(graph)), {
  executionProviders: ["cpu"],
  graphOptimizationLevel: "all",
});
const ortFeeds = Object.fromEntries(
  Object.entries(feeds).map(([k, t]: [string, Tensor]) => [k, new ort.Tensor(t.type, t.data, [...t.dims])]),
);
// Each timed run starts once the process is idle (bench/settle.ts: onnxruntime's pool spins ~35 ms after its runs).
const time = async (run: () => Promise<unknown>) => {
  await settle();
  const t0 = performance.now();
  await run();
  return performance.now() - t0;
};
// Warm-up: workers started, weights packed, JIT tiers reached.
for (let w = 0; w < 2; w++) {
  await a.run(feeds);
  await b.run(feeds);
  await ortSession.run(ortFeeds);
}
await Promise.all([a.run(feeds)])
  .then(() => b.run(feeds))
  .then(() => ortSession.run(ortFeeds));
const ta: number[] = [];
const tb: number[] = [];
const to: number[] = [];
let dropped = 0;
for (let i = 0; ta.length < n("pairs") && i < 4 * n("pairs"); i++) {
  const load = foreignLoad();
  // Alternate who goes first so neither always runs right after onnxruntime.
  let x: number;
  let y: number;
  if (i % 2) {
    y = await time(() => b.run(feeds));
    x = await time(() => a.run(feeds));
  } else {
    x = await time(() => a.run(feeds));
    y = await time(() => b.run(feeds));
  }
  const z = await time(() => ortSession.run(ortFeeds));
  // A pair during which other processes took over a tenth of a CPU is dropped (bench/settle.ts, foreignLoad).
  if (load.busy()) {
    dropped++;
    continue;
  }
  ta.push(x);
  tb.push(y);
  to.push(z);
}
if (ta.length === 0) {
  console.log(`no pair kept: other processes were busy through all ${dropped} (bench/settle.ts foreignLoad)`);
  process.exit(1);
}
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
const ratios = ta.map((x, i) => tb[i]! / x);
console.log(
  `BERT ${JSON.stringify(config)} batch ${n("batch")} seq ${n("seq")} level ${level}, ${ta.length} pairs (${dropped} dropped: other processes busy)`,
);
console.log(`other checkout (${other}): median ${median(ta).toFixed(1)} ms`);
console.log(`this checkout:              median ${median(tb).toFixed(1)} ms`);
console.log(`onnxruntime-node cpu:       median ${median(to).toFixed(1)} ms`);
console.log(`this / other, median of per-pair ratios: ${median(ratios).toFixed(3)}`);
process.exit(0);
