/**
 * A/B of the CPU bound plan in one process: two sessions on the same generated BERT, one with `replay: true`
 * (the default: bound-plan.ts) and one with `replay: false` (every node resolved every run), runs interleaved
 * with settle before each (bench/settle.ts), alternating who goes first; prints the medians, the median of
 * the per-pair ratios, and checks the outputs are bit-identical.
 *
 *   node --import tsx bench/bind-ab.ts [--layers 4 --hidden 768 --heads 12 --ffn 3072 --batch 1 --seq 128
 *     --pairs 30 --padded]
 *
 * `--padded`: lengths spread over seq/2..seq (padding removal runs; its graph's dims follow the mask).
 */
import { parseArgs } from "node:util";
import { InferenceSession } from "../src/engine/session.js";
import { bertInputs, buildBertGraph } from "../src/models/bert.js";
import { benchArgs } from "./cli-args.js";
import { foreignLoad, settle } from "./settle.js";

const { values } = benchArgs(import.meta.url, () =>
  parseArgs({
    options: {
      layers: { type: "string", default: "4" },
      hidden: { type: "string", default: "768" },
      heads: { type: "string", default: "12" },
      ffn: { type: "string", default: "3072" },
      batch: { type: "string", default: "1" },
      seq: { type: "string", default: "128" },
      pairs: { type: "string", default: "30" },
      padded: { type: "boolean", default: false },
    },
  }),
);
const n = (k: Exclude<keyof typeof values, "padded">) => Number(values[k]);
const config = { layers: n("layers"), hidden: n("hidden"), heads: n("heads"), ffn: n("ffn"), vocab: 1000 };
const graph = buildBertGraph(config);
const [batch, seq] = [n("batch"), n("seq")];
const lengths = Array.from({ length: batch }, (_, i) =>
  values.padded ? seq - Math.floor((i * seq) / (2 * batch)) : seq,
);
const feeds = bertInputs(lengths, seq, config.vocab);
const plain = InferenceSession.fromGraph(graph, { replay: false });
const bound = InferenceSession.fromGraph(graph, { replay: true });

const time = async (s: InferenceSession) => {
  await settle();
  const t0 = performance.now();
  await s.run(feeds);
  return performance.now() - t0;
};
const [x, y] = [await plain.run(feeds), await bound.run(feeds)];
for (const k of Object.keys(x)) {
  const [u, v] = [x[k]!.data as Float32Array, y[k]!.data as Float32Array];
  for (let i = 0; i < u.length; i++)
    if (!Object.is(u[i], v[i])) throw new Error(`${k}[${i}]: bound ${v[i]} vs plain ${u[i]}`);
}
for (let w = 0; w < 2; w++) {
  await plain.run(feeds);
  await bound.run(feeds);
}
const ta: number[] = [];
const tb: number[] = [];
let dropped = 0;
for (let i = 0; ta.length < n("pairs") && i < 4 * n("pairs"); i++) {
  const load = foreignLoad();
  let a: number;
  let b: number;
  if (i % 2) {
    b = await time(bound);
    a = await time(plain);
  } else {
    a = await time(plain);
    b = await time(bound);
  }
  // A pair during which other processes took over a tenth of a CPU is dropped (bench/settle.ts, foreignLoad).
  if (load.busy()) {
    dropped++;
    continue;
  }
  ta.push(a);
  tb.push(b);
}
if (ta.length === 0) {
  console.log(`no pair kept: other processes were busy through all ${dropped} (bench/settle.ts foreignLoad)`);
  process.exit(1);
}
const median = (xs: number[]) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)]!;
console.log(
  `BERT ${JSON.stringify(config)} batch ${batch} seq ${seq}${values.padded ? " padded" : ""}, ${ta.length} pairs (${dropped} dropped: other processes busy); outputs bit-identical`,
);
console.log(`plain (replay: false): median ${median(ta).toFixed(2)} ms`);
console.log(`bound (replay: true):  median ${median(tb).toFixed(2)} ms`);
console.log(`bound / plain, median of per-pair ratios: ${median(ta.map((t, i) => tb[i]! / t)).toFixed(3)}`);
process.exit(0);
