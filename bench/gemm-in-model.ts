/**
 * How much of a CPU model run is its GEMMs, and how fast they run there against the same shapes back to back
 * (issue 9): a native session on the BERT-base-width model of bench/cpu.ts, every addon GEMM call timed from JS
 * (NativeKernels.gemm wrapped), then the four linear-layer shapes alone on the same addon in the same process
 * (four layers of distinct, cold weights, as bench/addon-ab.ts), and the FMA probe's peak.
 *
 *   node --import tsx bench/gemm-in-model.ts [--layers 4] [--batch 1] [--runs 20] [--threads 2]
 */
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import { nativeKernels } from "../src/backends/cpu/native/index.js";
import { type GemmOptions, NativeKernels, type PackedWeights } from "../src/backends/cpu/native/kernels.js";
import { InferenceSession } from "../src/engine/session.js";
import { bertInputs, buildBertGraph } from "../src/models/bert.js";
import { seededRandom } from "../src/models/random.js";
import { benchArgs } from "./cli-args.js";

const { values } = benchArgs(import.meta.url, () =>
  parseArgs({
    options: {
      layers: { type: "string", default: "4" },
      batch: { type: "string", default: "1" },
      runs: { type: "string", default: "20" },
      threads: { type: "string", default: "2" },
    },
  }),
);
const [layers, batch, runs, threads] = (["layers", "batch", "runs", "threads"] as const).map((k) =>
  Number(values[k]),
) as [number, number, number, number];
const native = nativeKernels();
if (!native) throw new Error("the native addon is not built (npm run build:native)");

interface Call {
  shape: string;
  ms: number;
  flop: number;
}
let calls: Call[] | undefined;
const plain = NativeKernels.prototype.gemm;
NativeKernels.prototype.gemm = function (M, a, b, c, o) {
  const t0 = performance.now();
  plain.call(this, M, a, b, c, o);
  const ms = performance.now() - t0;
  calls?.push({
    shape: `${b.K}x${b.N}${o?.activation ? ` +${o.activation}` : ""}`,
    ms,
    flop: 2 * M * b.K * b.N,
  });
};

// The FMA probe first, on an idle pool of the run's threads (as bench/cpu.ts).
native.setThreads(threads);
const peak = native.measurePeak(100);
const median = (x: number[]) => [...x].sort((p, q) => p - q)[x.length >> 1]!;
const graph = buildBertGraph({ layers, hidden: 768, heads: 12, ffn: 3072, vocab: 1000 });
const session = InferenceSession.fromGraph(graph, { cpuKernels: "native", intraOpNumThreads: threads });
const feeds = bertInputs(Array(batch).fill(128), 128, 1000);
for (let i = 0; i < 3; i++) await session.run(feeds);
const walls: number[] = [];
const gemmMs: number[] = [];
// Per weight shape (K x N), each run's rate over all its calls: a large GEMM runs in row slices between
// event-loop turns, so one linear layer can be several calls.
const perShape = new Map<string, number[]>();
for (let r = 0; r < runs; r++) {
  calls = [];
  const t0 = performance.now();
  await session.run(feeds);
  walls.push(performance.now() - t0);
  gemmMs.push(calls.reduce((s, c) => s + c.ms, 0));
  const sums = new Map<string, { ms: number; flop: number }>();
  for (const c of calls) {
    const x = sums.get(c.shape) ?? { ms: 0, flop: 0 };
    x.ms += c.ms;
    x.flop += c.flop;
    sums.set(c.shape, x);
  }
  for (const [shape, x] of sums) perShape.set(shape, [...(perShape.get(shape) ?? []), x.flop / x.ms / 1e6]);
}
calls = undefined;
await session.release();

// The same shapes back to back: distinct weights per layer (cold, as in a run), the same A and C each time.
const rand = seededRandom(5);
// Values of BERT's scale (activations of unit variance, weights of std 0.02 as its initializer): the GELU
// epilogue's cost depends on how many pre-activations are negative and how far.
const filled = (n: number, std: number) =>
  Float32Array.from({ length: n }, () => (rand() - 0.5) * std * Math.sqrt(12));
const M = 128 * batch;
const shapes: [number, number, GemmOptions["activation"]][] = [
  [768, 2304, undefined],
  [768, 768, undefined],
  [768, 3072, "gelu"],
  [3072, 768, undefined],
];
const sets = shapes.map(([K, N, activation]) => ({
  K,
  N,
  activation,
  A: filled(M * K, 1),
  C: new Float32Array(M * N),
  bias: filled(N, 0.02),
  weights: Array.from({ length: layers }, (): PackedWeights => native.packWeights(filled(K * N, 0.02), K, N)),
}));
const alone = new Map<string, number[]>();
for (let r = 0; r < runs; r++)
  for (let l = 0; l < layers; l++)
    for (const s of sets) {
      const t0 = performance.now();
      native.gemm(M, s.A, s.weights[l]!, s.C, { bias: s.bias, activation: s.activation });
      const ms = performance.now() - t0;
      const key = `${s.K}x${s.N}${s.activation ? ` +${s.activation}` : ""}`;
      const rates = alone.get(key) ?? [];
      rates.push((2 * M * s.K * s.N) / ms / 1e6);
      alone.set(key, rates);
    }

const wall = median(walls);
const share = median(gemmMs.map((g, i) => g / walls[i]!));
console.log(
  `machine: ${cpus().length} x ${cpus()[0]?.model.trim() ?? "?"}, node ${process.version}, ${threads} threads; FMA probe ${peak.toFixed(0)} GFLOP/s`,
);
console.log(
  `BERT ${layers} layers [${batch},128], native session, median of ${runs} runs: ${wall.toFixed(1)} ms, of which GEMM calls ${(100 * share).toFixed(0)}%`,
);
const cell = (x: number[]) => (x.length ? `${median(x).toFixed(0)} (${Math.max(...x).toFixed(0)})` : "–");
const pct = (x: number[]) => (x.length ? `${((100 * median(x)) / peak).toFixed(0)}%` : "–");
console.log(
  `${"weight K x N".padEnd(18)} ${"in the model".padStart(13)} ${"back to back".padStart(13)}   GFLOP/s at M = ${M}: median (best); medians as % of the probe`,
);
for (const [shape, rates] of perShape) {
  const b2b = alone.get(shape) ?? [];
  console.log(
    `${shape.padEnd(18)} ${cell(rates).padStart(13)} ${cell(b2b).padStart(13)}   ${pct(rates)} / ${pct(b2b)}`,
  );
}
