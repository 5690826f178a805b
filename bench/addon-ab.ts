/**
 * A/B of two builds of the native addon in one process — for kernel changes: the BERT-base GEMM sequence
 * (QKV, output projection, FFN up, FFN down) of `--layers` layers with distinct weights (cold, as in a model
 * run), both builds interleaved rep by rep, medians. Build B from a copy of the repo with the change
 * (`node scripts/build-native.mjs` there), then:
 *
 *   node --import tsx bench/addon-ab.ts --b /path/to/copy/native/build/mhafuse_native.node [--m 128] [--threads 2]
 *
 * `--gap-us N` busy-waits N µs in JS before each GEMM (the engine's per-node host work between kernels); with
 * `--b` the same file as `--a` it measures that alone.
 */
import { createRequire } from "node:module";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { NativeKernels } from "../src/backends/cpu/native/kernels.js";
import { LOCAL_BUILD } from "../src/native/load.js";
import { benchArgs } from "./cli-args.js";

const { values } = benchArgs(import.meta.url, () =>
  parseArgs({
    options: {
      a: { type: "string", default: LOCAL_BUILD },
      b: { type: "string" },
      m: { type: "string", default: "128" },
      layers: { type: "string", default: "4" },
      threads: { type: "string", default: "2" },
      reps: { type: "string", default: "30" },
      "gap-us": { type: "string", default: "0" },
    },
  }),
);
if (!values.b) throw new Error("--b: the other build's mhafuse_native.node (see the header)");
const require = createRequire(import.meta.url);
const builds = {
  A: new NativeKernels(require(resolve(values.a!))),
  B: new NativeKernels(require(resolve(values.b))),
};
const M = Number(values.m);
const L = Number(values.layers);
for (const k of Object.values(builds)) k.setThreads(Number(values.threads));
let seed = 7;
const rand = (n: number) => {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (seed * 16807) % 2147483647;
    a[i] = seed / 1073741823.5 - 1;
  }
  return a;
};
const shapes: [number, number][] = [
  [768, 2304],
  [768, 768],
  [768, 3072],
  [3072, 768],
];
const weights = shapes.map(([K, N]) => Array.from({ length: L }, () => rand(K * N)));
const setsOf = (k: NativeKernels) =>
  shapes.map(([K, N], i) => ({
    A: rand(M * K),
    C: new Float32Array(M * N),
    bias: rand(N),
    B: weights[i]!.map((w) => k.packWeights(w, K, N)),
  }));
const sets = { A: setsOf(builds.A), B: setsOf(builds.B) };
const gapMs = Number(values["gap-us"]) / 1000;
const pause = () => {
  const until = performance.now() + gapMs;
  while (performance.now() < until);
};
const flop = shapes.reduce((s, [K, N]) => s + 2 * M * K * N * L, 0);
const rates: Record<"A" | "B", number[]> = { A: [], B: [] };
for (let r = 0; r < Number(values.reps); r++)
  for (const v of r % 2 ? (["A", "B"] as const) : (["B", "A"] as const)) {
    let ms = 0;
    for (let l = 0; l < L; l++)
      for (const s of sets[v]) {
        if (gapMs > 0) pause();
        const t0 = performance.now();
        builds[v].gemm(M, s.A, s.B[l]!, s.C, { bias: s.bias });
        ms += performance.now() - t0;
      }
    rates[v].push(flop / ms / 1e6);
  }
const median = (x: number[]) => [...x].sort((p, q) => p - q)[x.length >> 1]!;
const [a, b] = [median(rates.A), median(rates.B)];
console.log(
  `M=${M}, ${L} layers, ${values.threads} threads, gap ${values["gap-us"]} µs: A ${a.toFixed(0)} GFLOP/s, B ${b.toFixed(0)} GFLOP/s, B/A ${(b / a).toFixed(3)}`,
);
