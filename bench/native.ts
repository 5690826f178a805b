/**
 * Native GEMM throughput on the BERT-base shapes against the WebAssembly GEMM (src/backends/cpu) and
 * onnxruntime-node running a one-MatMul graph of the same shape, at 1 and 2 threads. All three run in this
 * process, interleaved rep by rep (the box is shared), with weights packed once / initializers; medians.
 * Each rep also times the FMA probe (register-only FMAs, measurePeak) so the GEMM is compared with the peak the
 * machine gives at that moment as well as with the data-sheet peak (Zen 5: 269 GFLOP/s per core, 523 on two).
 *
 *   node --import tsx bench/native.ts [--reps 15] [--threads 1,2] [--json]
 */
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import * as ort from "onnxruntime-node";
import { closeGemmWorkers, gemmParallel, warmGemmWorkers } from "../src/backends/cpu/gemm-parallel.js";
import { markImmutable } from "../src/backends/cpu/immutable.js";
import { nativeKernels } from "../src/backends/cpu/native/index.js";
import { GraphBuilder } from "../src/ir/builder.js";
import { Tensor } from "../src/ir/tensor.js";
import { modelFromGraph, saveModel } from "../src/onnx/index.js";
import { benchArgs } from "./cli-args.js";
import { settle } from "./settle.js";

const { values } = benchArgs(import.meta.url, () =>
  parseArgs({
    options: {
      reps: { type: "string", default: "15" },
      threads: { type: "string", default: "1,2" },
      json: { type: "boolean", default: false },
    },
  }),
);
const REPS = Number(values.reps);
const THREADS = values.threads!.split(",").map(Number);
const NOMINAL_PER_CORE = 269;
const nominal = (t: number) => (t === 1 ? NOMINAL_PER_CORE : t === 2 ? 523 : NOMINAL_PER_CORE * t);

const nk = nativeKernels();
if (!nk) throw new Error("bench/native.ts needs the native addon: npm run build:native");

/** [tokens M, K, N]: QKV projection, attention output, FFN up, FFN down. */
const SHAPES: [number, number, number][] = [128, 1024].flatMap((M) => [
  [M, 768, 2304] as [number, number, number],
  [M, 768, 768] as [number, number, number],
  [M, 768, 3072] as [number, number, number],
  [M, 3072, 768] as [number, number, number],
]);

function rand(n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.random() * 2 - 1;
  return a;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function ortMatMul(M: number, K: number, N: number, B: Float32Array, threads: number) {
  const g = new GraphBuilder({ opset: 17 });
  const a = g.input("A", "float32", [M, K]);
  const b = g.init(new Tensor("float32", B, [K, N]), "B");
  g.output(g.op("MatMul", [a, b]), "float32", [M, N]);
  const session = await ort.InferenceSession.create(saveModel(modelFromGraph(g.build())), {
    executionProviders: ["cpu"],
    graphOptimizationLevel: "all",
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
  });
  return session;
}

interface Row {
  M: number;
  K: number;
  N: number;
  threads: number;
  peak: number;
  native: number;
  wasm: number;
  ort: number;
}
const rows: Row[] = [];
await warmGemmWorkers(Math.max(...THREADS));

for (const threads of THREADS) {
  nk.setThreads(threads);
  for (const [M, K, N] of SHAPES) {
    const A = rand(M * K);
    const B = rand(K * N);
    markImmutable(B); // the WebAssembly GEMM then packs B once and reuses it, as the native one does
    const C = new Float32Array(M * N);
    const packed = nk.packWeights(B, K, N);
    const session = await ortMatMul(M, K, N, B, threads);
    const feeds = { A: new ort.Tensor("float32", A, [M, K]) };
    const flop = 2 * M * N * K;
    const kernels: [keyof Row, () => unknown][] = [
      ["native", () => nk.gemm(M, A, packed, C)],
      [
        "wasm",
        () =>
          gemmParallel(
            {
              transA: false,
              transB: false,
              M,
              N,
              K,
              alpha: 1,
              A,
              aOffset: 0,
              lda: K,
              B,
              bOffset: 0,
              ldb: N,
              beta: 0,
              C,
              cOffset: 0,
              ldc: N,
            },
            { threads },
          ),
      ],
      ["ort", () => session.run(feeds)],
    ];
    const times: Record<string, number[]> = { native: [], wasm: [], ort: [], peak: [] };
    for (let r = -2; r < REPS; r++) {
      await settle(); // onnxruntime's pool spins for ~35 ms after its run (bench/settle.ts)
      const peak = nk.measurePeak(10);
      if (r >= 0) times.peak!.push(peak);
      for (const [name, run] of kernels) {
        await settle();
        const t0 = performance.now();
        await run();
        const ms = performance.now() - t0;
        if (r >= 0) times[name]!.push(flop / ms / 1e6);
      }
    }
    await session.release();
    rows.push({
      M,
      K,
      N,
      threads,
      peak: median(times.peak!),
      native: median(times.native!),
      wasm: median(times.wasm!),
      ort: median(times.ort!),
    });
  }
}
await closeGemmWorkers();

if (values.json) {
  console.log(
    JSON.stringify({ machine: cpus()[0]?.model, node: process.version, isa: nk.isa, rows }, null, 2),
  );
} else {
  console.log(
    `machine: ${cpus().length} x ${cpus()[0]?.model ?? "?"}, node ${process.version}, native ISA ${nk.isa}, ` +
      `median of ${REPS} interleaved reps, GFLOP/s`,
  );
  console.log(
    "| M×K→N | threads | FMA probe | native | % of probe | % of nominal | wasm | onnxruntime | native / ort |",
  );
  console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
  const f = (x: number) => x.toFixed(1);
  for (const r of rows)
    console.log(
      `| ${r.M}×${r.K}→${r.N} | ${r.threads} | ${f(r.peak)} | ${f(r.native)} | ${f((100 * r.native) / r.peak)}% | ` +
        `${f((100 * r.native) / nominal(r.threads))}% | ${f(r.wasm)} | ${f(r.ort)} | ${(r.native / r.ort).toFixed(2)}x |`,
    );
}
