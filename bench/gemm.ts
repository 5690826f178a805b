/**
 * Float32 GEMM throughput: the plain-JS kernel (gemm.ts) against the WebAssembly SIMD kernel (gemm-wasm.ts) on
 * one thread, and the parallel GEMM on every core. `node --import tsx bench/gemm.ts [--reps N]`.
 */
import { gemm } from "../src/backends/cpu/gemm.js";
import { closeGemmWorkers, gemmParallel, warmGemmWorkers } from "../src/backends/cpu/gemm-parallel.js";
import { gemmWasm, wasmGemmAvailable } from "../src/backends/cpu/gemm-wasm.js";
import { cpuThreads } from "../src/backends/cpu/thread-pool.js";
import { benchArgs } from "./cli-args.js";

// --help prints the usage above (this script reads its own arguments).
benchArgs(import.meta.url, () => undefined);

const repsArg = process.argv.indexOf("--reps");
const REPS = repsArg > 0 ? Number(process.argv[repsArg + 1]) : 5;

const SHAPES: [string, number, number, number][] = [
  ["768^3", 768, 768, 768],
  ["BERT QKV-ish M=512 K=256 N=1024", 512, 1024, 256],
  ["BERT FFN1 M=512 K=768 N=3072", 512, 3072, 768],
  ["BERT FFN2 M=512 K=3072 N=768", 512, 768, 3072],
  ["scores M=128 K=64 N=128", 128, 128, 64],
];

function rand(n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.random() * 2 - 1;
  return a;
}

type Kernel = typeof gemm;

function gflops(kernel: Kernel, M: number, N: number, K: number): number {
  const A = rand(M * K);
  const B = rand(K * N);
  const C = new Float32Array(M * N);
  const once = () =>
    kernel({
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
    });
  once(); // warm-up (JIT tiers)
  once();
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < REPS; r++) {
    const t = performance.now();
    once();
    best = Math.min(best, performance.now() - t);
  }
  return (2 * M * N * K) / best / 1e6;
}

await warmGemmWorkers();
console.log(`wasm SIMD available: ${wasmGemmAvailable()}, threads: ${cpuThreads()}, best of ${REPS}`);
console.log("shape | JS 1 thread | wasm 1 thread | speedup | gemmParallel (all threads)");
for (const [name, M, N, K] of SHAPES) {
  const js = gflops(gemm, M, N, K);
  const wasm = gflops(gemmWasm, M, N, K);
  const par = gflops(gemmParallel, M, N, K);
  const f = (x: number) => `${x.toFixed(2)} GFLOP/s`;
  console.log(`${name} | ${f(js)} | ${f(wasm)} | ${(wasm / js).toFixed(2)}x | ${f(par)}`);
}
await closeGemmWorkers();
